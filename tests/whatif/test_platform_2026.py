"""The 2026 profile (configs/platforms/aws_2026.yaml), INIT billing and S3 Express One Zone.

The generic key-value contract runs S3 Express through tests/core/test_storage_contract.py; here are
what only a directory bucket does (prefix rules, per-bucket rates, per-GB charges) and what 2026
changed in Lambda's bill (1 ms granularity, the INIT phase billed)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sls_ray import errors
from sls_ray.config import PROFILE_DIR, load_profile, read_yaml
from sls_ray.runtime import simulate_handlers

EXACT = {"cold_start_sigma": 0.0, "cold_start_s": 0.3, "invoke_latency_s": 0.02, "nic_mbs": 10.0}


def test_every_value_the_2026_profile_sets_has_a_provenance_tag_and_a_source():
    text = (PROFILE_DIR / "aws_2026.yaml").read_text()
    own = read_yaml(PROFILE_DIR / "aws_2026.yaml")
    prof = load_profile("aws_2026")
    paths = [f"functions.{k}" for k in own["functions"]]
    paths += [f"services.{s}.{k}" for s, v in own["services"].items() for k in v if k != "kind"]
    for path in paths:
        leaf = path.rsplit(".", 1)[1]
        lines = text.splitlines()
        i = next(i for i, ln in enumerate(lines) if re.match(rf"\s+{leaf}:\s", ln))
        line = lines[i]
        while i + 1 < len(lines) and lines[i + 1].strip().startswith("#"):  # the comment continues below
            i += 1
            line += lines[i]
        assert re.search(r"\[(doc|meas|est)\]", line), f"{path}: no provenance tag on its line"
        if "[doc]" in line:
            assert ".com" in line or "same" in line or "announcement" in line or "unchanged" in line, path
    assert prof.functions.memory_mb_max == 10240 and prof.functions.billing_granularity_ms == 1
    assert prof.functions.bill_init and not load_profile("aws_2020").functions.bill_init
    assert prof.functions.payload_async_bytes == 1 << 20
    assert prof.service_config("sqs").message_limit_bytes == 1 << 20
    assert prof.service_config("dynamodb").price_per_million_writes == pytest.approx(1.25 / 2)
    assert prof.service_config("s3express").kind == "s3express"
    assert prof.tag("services.s3express.latency_s") == "[doc][est]"


def test_what_the_2026_profile_calls_unchanged_equals_2020():
    """The what-if isolates what AWS changed: a value 2026 restates as unchanged must be 2020's
    (S3's request latency was restated at 0.02 s after 2020 moved to the sourced 0.05 s)."""
    new, old = load_profile("aws_2026"), load_profile("aws_2020")
    for field in ("latency_s", "write_rate_per_prefix", "read_rate_per_prefix"):
        assert getattr(new.service_config("s3"), field) == getattr(old.service_config("s3"), field), field
    for field in ("price_per_gb_s", "price_per_request", "concurrency_limit", "nic_mbs"):
        assert getattr(new.functions, field) == getattr(old.functions, field), field


def test_lambdaml_2026_profile_keeps_every_lambdaml_estimate_of_2020():
    """aws_2026_lambdaml = aws_2026 + the same LambdaML estimates as aws_2020_lambdaml (kept in step)."""
    own = read_yaml(PROFILE_DIR / "aws_2020_lambdaml.yaml")
    new = load_profile("aws_2026_lambdaml").model_dump()
    for name, settings in own["services"].items():
        for key, value in settings.items():
            assert new["services"][name][key] == value, (name, key)
    assert new["functions"]["bill_init"] and new["services"]["s3express"]["kind"] == "s3express"


def _one(handler, platform="aws_2026", profile=None, memory=None):
    return simulate_handlers({"main": handler}, ("main", None), platform=platform,
                             profile={"functions": EXACT, **(profile or {})}, memory=memory or {"main": 1024})


def test_2026_bills_the_init_phase_and_rounds_to_1_ms():
    def main(ctx, p):
        ctx.sleep(0.1234)

    new = _one(main).invocations.iloc[0]
    old = _one(main, platform="aws_2020").invocations.iloc[0]
    assert bool(new["cold"]) and new["init_s"] == pytest.approx(0.3)
    assert new["end_s"] - new["start_s"] == pytest.approx(0.1234)
    assert new["billed_ms"] == 424.0          # 300 ms INIT + 123.4 ms, rounded up to the next ms
    assert old["billed_ms"] == 200.0          # 2020: INIT free, 123.4 ms rounded up to 100 ms steps
    assert old["init_s"] == pytest.approx(0.3)


def test_the_2026_async_payload_limit_is_1_mb():
    def main(ctx, p):
        ctx.invoke("child", b"x" * 900_000)  # above 2020's 256 KB, below 2026's 1 MB

    def child(ctx, p):
        ctx.log("got", n=len(p))

    for platform, ok in (("aws_2020", False), ("aws_2026", True)):
        r = simulate_handlers({"main": main, "child": child}, ("main", None), platform=platform)
        assert (len(r.metric("got")) == 1) == ok, platform


def test_directory_bucket_lists_only_under_slash_terminated_prefixes():
    def main(ctx, p):
        c = ctx.storage("s3express")
        for k in ("run/1", "run/2", "runner"):
            c.put(k, b"x")
        ctx.log("ok", keys=sorted(c.list("run/")))
        try:
            c.list("run")
        except errors.NotSupported as e:
            ctx.log("refused", message=str(e))

    r = _one(main)
    assert r.metric("ok")["keys"].iloc[0] == ["run/1", "run/2"]
    assert "end in '/'" in r.metric("refused")["message"].iloc[0]


def test_directory_bucket_throttles_per_bucket_not_per_prefix():
    def main(ctx, p):
        c = ctx.storage("s3express")
        for i in range(3):  # three different prefixes within one second
            c.put(f"p{i}/k", b"x")

    r = _one(main, profile={"services": {"s3express": {"write_rate_per_bucket": 2, "max_retries": 0}}})
    row = r.storage.set_index("service").loc["s3express"]
    # the third PUT is over the bucket's rate on every attempt (Lambda retries a failed event twice)
    assert list(r.invocations["status"]) == ["Throttled"] * 3 and row["throttles"] == 3 and row["req_PUT"] == 6


def test_s3express_bills_cheap_requests_plus_every_byte_moved():
    mib = 1 << 20

    def main(ctx, p):
        c = ctx.storage("s3express")
        c.put("d/a", b"x" * (4 * mib))
        c.get("d/a")
        c.get("d/a")
        c.delete("d/a")

    r = _one(main, profile={"functions": {**EXACT, "nic_mbs": 1000.0}})
    cost = r.summary["cost_usd"]
    assert cost["s3express_requests"] == pytest.approx((1 * 0.00113 + 2 * 0.00003) / 1000)  # DELETE is free
    gib = 4 / 1024
    assert cost["s3express_transfer"] == pytest.approx(gib * 0.0032 + 2 * gib * 0.0006)


def test_cirrus_2026_twin_adds_exactly_what_the_2020_cirrus_profile_adds():
    """configs/cirrus/platform_2026.yaml = aws_2026 + the same Cirrus VMs as configs/cirrus/platform.yaml."""
    cirrus = PROFILE_DIR.parent / "cirrus"
    old, new = read_yaml(cirrus / "platform.yaml"), read_yaml(cirrus / "platform_2026.yaml")
    assert (old.pop("extends"), new.pop("extends")) == ("aws_2020", "aws_2026")
    assert new.pop("name") == "aws_2026_cirrus" and old.pop("name") == "aws_2020_cirrus"
    assert new.pop("description").replace("2026", "2020") == old.pop("description")
    assert new == old  # the same services, the same values, nothing else
    twin = load_profile(str(cirrus / "platform_2026.yaml"))
    assert twin.functions.bill_init and twin.functions.memory_mb_max == 10240
    assert twin.service_config("cluster").node_price_per_hour == 0.68


def test_infless_serving_reads_nothing_of_the_lambda_profile():
    """INFless's cluster, GPU shares and prices are its own model: aws_2020 and aws_2026 serve alike
    (results/README.md, "2026 what-if"); only the one hosting function's cold start and bill differ."""
    from sls_ray.config import load_config
    from sls_ray.runtime import simulate

    cfg = Path(__file__).resolve().parents[2] / "configs" / "infless" / "serving.yaml"
    runs = {p: simulate(load_config(cfg, [f"platform={p}", "params.duration_s=10", "params.load_rps=100"])).summary
            for p in ("aws_2020", "aws_2026")}
    old, new = runs["aws_2020"], runs["aws_2026"]
    assert old["infless"] == new["infless"] and old["infless"]["arrived"] > 0
    assert new["cost_usd"]["lambda_compute"] > old["cost_usd"]["lambda_compute"]  # 2026 bills the INIT phase
