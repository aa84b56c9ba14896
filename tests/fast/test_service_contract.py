"""The service contract (sls_ray/storage/base.py) over EVERY registered service, SQS and the
request stream included, each built on a fake environment (conftest.FakeEnv): no kernel, no
threads. A new service added to sls_ray.storage.REGISTRY is picked up here automatically; the
key-value semantics themselves are checked end to end in tests/core/test_storage_contract.py.
"""
from __future__ import annotations

import pytest

from sls_ray.errors import ConfigError
from sls_ray.storage import REGISTRY, service_class, validate_service_config
from sls_ray.storage.base import Done, Fail, Park, ProcessHost, Request, Service, ServiceTraits, Upload
from sls_ray.storage.kvstore import KVStore
from sls_ray.vtime import NS_PER_S

KINDS = sorted(REGISTRY)
#: a request that parks in each kind of service: (method, args) with a 5 s wait
PARKING = {
    "sqs": ("receive", ("q", 30.0, 5.0)),
    "requests": ("take", (4, 5.0)),
}
KV_PARK = ("wait", ("missing-key", 0.1, 5.0))


def build(kind: str, env, **over) -> Service:
    cfg = validate_service_config(kind, {"kind": kind, "latency_s": 0.002, **over})
    if kind == "requests":  # no arrivals before the wait ends: the request stays parked
        cfg = validate_service_config(kind, {"kind": kind, "arrival": "trace", "trace_s": [60.0], **over})
    svc = service_class(kind)(kind, cfg, env)
    assert isinstance(svc, Service) and svc.kind == kind
    return svc


def request(method: str, args: tuple = (), size: int = 0, handle=None, fid: int = 1, seq: int = 0,
            t: int = 0) -> Request:
    return Request(fid, seq, method, args, size, handle, t)


@pytest.mark.parametrize("kind", KINDS)
def test_config_defaults_validate_and_name_the_kind(kind):
    cfg = validate_service_config("x", {"kind": kind})
    assert cfg.kind == kind and type(cfg) is service_class(kind).Config
    with pytest.raises(ConfigError, match=f"unknown key 'services.x.bogus' for a {kind} service"):
        validate_service_config("x", {"kind": kind, "bogus": 1})


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_operation_fails_not_supported(kind, env):
    out = build(kind, env).handle(0, request("no_such_op"))
    assert isinstance(out, Fail) and out.error == "NotSupported" and "no_such_op" in out.message


@pytest.mark.parametrize("kind", KINDS)
def test_declared_traits_limits_and_retries(kind, env):
    svc = build(kind, env)
    traits = svc.traits()
    assert isinstance(traits, ServiceTraits) and traits.kind == kind
    assert traits.item_limit_bytes == svc.item_limit_bytes()
    assert traits.lists == svc.lists()
    assert svc.client_retries() >= 0
    for n in (1, 2, 50):
        assert 1 <= svc.mget_round_trips(n) <= n
    assert traits.mget_one_round_trip == (svc.mget_round_trips(50) == 1)


def test_the_traits_are_the_documented_ones(env):
    """What collectives rely on: Memcached cannot list and multi-gets in one trip; S3 lists;
    SQS limits messages to 256 KiB; DynamoDB items to 400 KiB."""
    t = {k: build(k, env).traits() for k in KINDS}
    assert not t["memcached"].lists and t["memcached"].mget_one_round_trip
    assert t["s3"].lists and not t["s3"].mget_one_round_trip and t["s3"].item_limit_bytes is None
    assert t["sqs"].item_limit_bytes == 256 * 1024 and not t["sqs"].lists
    assert t["dynamodb"].item_limit_bytes == 400 * 1024
    assert not t["requests"].lists and t["requests"].item_limit_bytes is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_cancelled_parked_request_is_never_answered(kind, env):
    svc = build(kind, env)
    method, args = PARKING.get(kind, KV_PARK)
    out = svc.handle(0, request(method, args))
    assert isinstance(out, Park), f"{kind}.{method} with a wait should park, got {out}"
    assert out.ticket.deadline_ns == 5 * NS_PER_S and not out.ticket.closed
    svc.cancel(out.ticket, NS_PER_S)
    assert out.ticket.closed
    env.run_until(10 * NS_PER_S)
    assert env.resumed == [], "a cancelled wait must not answer its dead caller"


@pytest.mark.parametrize("kind", KINDS)
def test_an_uncancelled_parked_request_times_out_at_its_deadline(kind, env):
    svc = build(kind, env)
    method, args = PARKING.get(kind, KV_PARK)
    ticket = svc.handle(0, request(method, args)).ticket
    env.run_until(10 * NS_PER_S)
    ((resumed, t, outcome),) = env.resumed
    assert resumed is ticket and t == 5 * NS_PER_S
    assert isinstance(outcome, (Done, Fail))  # a receive/take answers None; a KV wait fails WaitTimeout
    assert ticket.waiter is None, "the kernel's note on a ticket is the kernel's to set"


@pytest.mark.parametrize("kind", KINDS)
def test_report_and_cost_are_plain_numbers(kind, env):
    svc = build(kind, env)
    report = svc.report()
    assert isinstance(report, dict)
    cost = svc.cost(60 * NS_PER_S)
    assert cost and all(isinstance(v, float) and v >= 0 for v in cost.values())


@pytest.mark.parametrize("kind", sorted(k for k in KINDS if issubclass(service_class(k), KVStore)))
def test_key_value_services_expose_what_they_hold_at_the_end(kind, env):
    svc = build(kind, env, **({"startup_s": 0.0} if kind == "vm" else {}))
    out = svc.handle(0, request("put", ("dir/a",), size=10, handle="H"))
    assert isinstance(out, Upload) and out.nbytes == 10
    out.commit(1)
    assert svc.stored_keys("dir/") == ["dir/a"] and svc.stored_keys("other/") == []
    assert svc.stored_handle("dir/a") == "H" and svc.stored_handle("nope") is None


@pytest.mark.parametrize("kind", KINDS)
def test_volatile_services_lose_data_and_durable_ones_refuse(kind, env):
    svc = build(kind, env)
    if service_class(kind).volatile:
        svc.lose_data(0)
    else:
        with pytest.raises(ConfigError, match="durable"):
            svc.lose_data(0)


def test_only_vm_services_host_processes(env):
    hosts = [k for k in KINDS if issubclass(service_class(k), ProcessHost)]
    assert hosts == ["vm"]
    vm = build("vm", env)
    assert vm.vcpus() == vm.config.vcpus and vm.flops_per_s() > 0
    assert vm.vm_nic() is not vm.vm_nic() or vm.config.nodes == 1
