"""Every kind of bad input gets one clear paragraph and the right exit status (issue 8).

Each row is a config text, the command's arguments and the words the message must hold
(the field, usually the value). For each: exit 2 (bad input, found before anything runs) or 1
(the run ran and failed: a handler's own bad call), the words, no traceback, and no result
directory that looks finished (none at all for exit 2; status 'failed' for exit 1).
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from typer.testing import CliRunner

from sls_ray.cli import app
from sls_ray.experiment import EXPERIMENTS, Experiment
from sls_ray.platform import Strict

GOOD = "experiment: allreduce\nparams: {workers: 2, rounds: 1, floats: 100}\n"
SWEEPABLE = GOOD + "sweep: {workers: [1, 2]}\n"


class BadCallParams(Strict):
    memory_mb: int | None = Field(None, description="memory_mb the entry passes to ctx.invoke")
    payload_bytes: int = Field(0, ge=0, description="bytes of the invoke's payload")
    sync: bool = Field(False, description="a synchronous invoke")
    entry_bytes: int = Field(0, ge=0, description="bytes of padding in the entry payload")


def bad_call_main(ctx, p: dict) -> None:
    ctx.invoke("child", b"x" * p["payload_bytes"] if p["payload_bytes"] else None, sync=p["sync"],
               memory_mb=p["memory_mb"])


def child(ctx, p: Any) -> int:
    return 1


class BadCallExperiment(Experiment):
    """An entry function that makes whatever ctx.invoke call its parameters say."""

    name = "badcall"
    Params = BadCallParams

    def handlers(self):
        return {"main": bad_call_main, "child": child}

    def entry(self):
        return "main", {**self.params.model_dump(), "pad": b"x" * self.params.entry_bytes}


BADCALL = "experiment: badcall\nprofile: {functions: {async_retries: 0}}\n"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def _profile(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


P = "--set"
# (id, config text, args, exit status, words); "{tmp}" in text or args is the test's directory
CASES: list[tuple[str, str, list[str], int, list[str]]] = [
    # ---------------------------------------------------------------- config files
    ("malformed_yaml", "experiment: allreduce\nparams: {workers: 2\n", [], 2, ["malformed YAML", "line"]),
    ("tab_indent", "experiment: allreduce\nparams:\n\tworkers: 2\n", [], 2, ["malformed YAML"]),
    ("top_level_list", "- experiment: allreduce\n", [], 2, ["top level must be a mapping"]),
    ("top_level_scalar", "allreduce\n", [], 2, ["top level must be a mapping"]),
    ("empty_file", "", [], 2, ["experiment"]),
    ("unknown_top_level_key", GOOD + "workerz: 3\n", [], 2, ["workerz", "params"]),
    ("unknown_param", GOOD.replace("workers: 2", "workerz: 2"), [], 2, ["params.workerz", "workers"]),
    ("missing_experiment", "params: {workers: 2}\n", [], 2, ["experiment"]),
    ("unknown_experiment", "experiment: nosuch\n", [], 2, ["nosuch", "allreduce"]),
    ("unknown_platform", GOOD + "platform: nosuch\n", [], 2, ["platform", "nosuch", "aws_2020"]),
    ("platform_path_missing", GOOD + "platform: {tmp}/none.yaml\n", [], 2, ["none.yaml", "no such file"]),
    ("seed_not_int", GOOD + "seed: abc\n", [], 2, ["seed", "abc"]),
    ("seed_negative", GOOD + "seed: -1\n", [], 2, ["seed", "-1"]),
    ("params_not_mapping", "experiment: allreduce\nparams: 5\n", [], 2, ["params"]),
    ("profile_not_mapping", GOOD + "profile: 5\n", [], 2, ["profile"]),
    ("faults_not_list", GOOD + "faults: 5\n", [], 2, ["faults"]),
    ("sweep_not_mapping", GOOD + "sweep: 5\n", [], 2, ["sweep"]),
    ("run_transport_in_file", GOOD + "run: {transport: pigeon}\n", [], 2, ["run.transport", "pigeon"]),
    ("run_watchdog_zero", GOOD + "run: {watchdog_s: 0}\n", [], 2, ["run.watchdog_s"]),
    ("run_unknown_key", GOOD + "run: {hostz: 2}\n", [], 2, ["run.hostz", "hosts"]),
    ("run_hosts_zero_ray", GOOD + "run: {transport: ray, hosts: 0}\n", [], 2, ["run.hosts"]),
    # ---------------------------------------------------------------- profile values
    ("concurrency_zero", GOOD, [P, "profile.functions.concurrency_limit=0"], 2, ["concurrency_limit", "0"]),
    ("nic_zero", GOOD, [P, "profile.functions.nic_mbs=0"], 2, ["nic_mbs"]),
    ("nic_negative", GOOD, [P, "profile.functions.nic_mbs=-1"], 2, ["nic_mbs", "-1"]),
    ("nic_inf", GOOD, [P, "profile.functions.nic_mbs=.inf"], 2, ["nic_mbs"]),
    ("nic_nan", GOOD, [P, "profile.functions.nic_mbs=.nan"], 2, ["nic_mbs"]),
    ("cold_start_negative", GOOD, [P, "profile.functions.cold_start_s=-1"], 2, ["cold_start_s", "-1"]),
    ("cold_sigma_negative", GOOD, [P, "profile.functions.cold_start_sigma=-0.1"], 2, ["cold_start_sigma"]),
    ("warm_start_negative", GOOD, [P, "profile.functions.warm_start_s=-1"], 2, ["warm_start_s"]),
    ("price_gb_s_negative", GOOD, [P, "profile.functions.price_per_gb_s=-1"], 2, ["price_per_gb_s"]),
    ("price_request_negative", GOOD, [P, "profile.functions.price_per_request=-0.1"], 2, ["price_per_request"]),
    ("memory_step_zero", GOOD, [P, "profile.functions.memory_step_mb=0"], 2, ["memory_step_mb"]),
    ("memory_min_zero", GOOD, [P, "profile.functions.memory_mb_min=0"], 2, ["memory_mb_min"]),
    ("memory_min_above_max", GOOD, [P, "profile.functions.memory_mb_min=4000"], 2, ["memory_mb_min", "4000"]),
    ("default_memory_off_grid", GOOD, [P, "profile.functions.default_memory_mb=1000"], 2,
     ["default_memory_mb", "1000", "memory_step_mb"]),
    ("invoke_latency_zero", GOOD, [P, "profile.functions.invoke_latency_s=0"], 2, ["invoke_latency_s"]),
    ("max_duration_zero", GOOD, [P, "profile.functions.max_duration_s=0"], 2, ["max_duration_s"]),
    ("default_timeout_negative", GOOD, [P, "profile.functions.default_timeout_s=-5"], 2, ["default_timeout_s"]),
    ("keep_alive_negative", GOOD, [P, "profile.functions.keep_alive_s=-5"], 2, ["keep_alive_s"]),
    ("granularity_negative", GOOD, [P, "profile.functions.billing_granularity_ms=-100"], 2,
     ["billing_granularity_ms"]),
    ("async_retries_negative", GOOD, [P, "profile.functions.async_retries=-1"], 2, ["async_retries"]),
    ("retry_delay_negative", GOOD, [P, "profile.functions.async_retry_delays_s=[-1]"], 2,
     ["async_retry_delays_s"]),
    ("duplicate_prob_above_1", GOOD, [P, "profile.functions.duplicate_delivery_prob=2"], 2,
     ["duplicate_delivery_prob"]),
    ("gflops_zero", GOOD, [P, "profile.functions.gflops_per_vcpu=0"], 2, ["gflops_per_vcpu"]),
    ("mb_per_vcpu_zero", GOOD, [P, "profile.functions.mb_per_vcpu=0"], 2, ["mb_per_vcpu"]),
    ("mem_bandwidth_zero", GOOD, [P, "profile.functions.mem_bandwidth_gbs=0"], 2, ["mem_bandwidth_gbs"]),
    ("payload_async_negative", GOOD, [P, "profile.functions.payload_async_bytes=-1"], 2, ["payload_async_bytes"]),
    ("backoff_negative", GOOD, [P, "profile.functions.throttle_backoff_s=-1"], 2, ["throttle_backoff_s"]),
    ("runtime_base_negative", GOOD, [P, "profile.functions.runtime_base_mb=-1"], 2, ["runtime_base_mb"]),
    ("unknown_functions_key", GOOD + "profile:\n  functions:\n    nic_mb: 5\n", [], 2,
     ["functions.nic_mb", "nic_mbs", "profile:"]),
    ("s3_latency_zero", GOOD, [P, "profile.services.s3.latency_s=0"], 2, ["s3.latency_s", "> 0"]),
    ("s3_latency_negative", GOOD, [P, "profile.services.s3.latency_s=-1"], 2, ["s3.latency_s"]),
    ("memcached_latency_zero", GOOD, [P, "profile.services.memcached.latency_s=0"], 2, ["memcached.latency_s"]),
    ("dynamodb_item_limit_zero", GOOD, [P, "profile.services.dynamodb.item_limit_bytes=0"], 2,
     ["dynamodb.item_limit_bytes"]),
    ("s3_storage_price_negative", GOOD, [P, "profile.services.s3.price_per_gb_month=-1"], 2,
     ["s3.price_per_gb_month"]),
    ("sqs_message_limit_zero", GOOD, [P, "profile.services.sqs.message_limit_bytes=0"], 2,
     ["sqs.message_limit_bytes"]),
    ("s3_page_keys_zero", GOOD, [P, "profile.services.s3.list_page_keys=0"], 2, ["s3.list_page_keys"]),
    ("unknown_service_kind", GOOD + "profile:\n  services:\n    cache: {kind: nosuchkind}\n", [], 2,
     ["nosuchkind", "memcached"]),
    ("unknown_s3_key", GOOD + "profile:\n  services:\n    s3: {latency: 0.1}\n", [], 2,
     ["services.s3.latency", "latency_s"]),
    ("extends_cycle", GOOD + "platform: {tmp}/cyc_a.yaml\n", [], 2, ["cycle", "cyc_a", "cyc_b", "cyc_c"]),
    ("profile_file_bad_key", GOOD + "platform: {tmp}/badkey.yaml\n", [], 2, ["badkey.yaml", "functions.nic_mb"]),
    # ---------------------------------------------------------------- --set
    ("set_without_equals", GOOD, [P, "params.workers"], 2, ["--set", "params.workers", "KEY=VALUE"]),
    ("set_empty_key", GOOD, [P, "=5"], 2, ["--set", "empty key"]),
    ("set_bad_type", GOOD, [P, "params.workers=many"], 2, ["params.workers", "many"]),
    ("set_into_a_value", GOOD, [P, "params.workers.x=1"], 2, ["--set", "workers", "not a section"]),
    ("set_bad_yaml", GOOD, [P, "params.workers=[1"], 2, ["--set", "not valid YAML"]),
    ("set_negative_memory", GOOD, [P, "params.memory_mb=-5"], 2, ["memory_mb", "-5", "128", "3008"]),
    ("set_memory_too_big", GOOD, [P, "params.memory_mb=99999"], 2, ["memory_mb", "99999", "3008"]),
    ("set_memory_off_grid", GOOD, [P, "params.memory_mb=1000"], 2, ["memory_mb=1000", "memory_step_mb", "1024"]),
    ("set_unknown_service", GOOD, [P, "params.service=nosuch"], 2, ["nosuch", "s3"]),
    ("set_rounds_zero", GOOD, [P, "params.rounds=0"], 2, ["params.rounds"]),
    # ---------------------------------------------------------------- --out
    ("out_is_a_file", GOOD, ["--out", "{tmp}/afile"], 2, ["--out", "afile", "is a file"]),
    ("out_under_a_file", GOOD, ["--out", "{tmp}/afile/sub"], 2, ["--out", "afile", "is a file"]),
    ("out_foreign_directory", GOOD, ["--out", "{tmp}/mine"], 2, ["--out", "mine", "notes.txt"]),
    # ---------------------------------------------------------------- CLI options
    ("bad_transport", GOOD, ["--transport", "carrier-pigeon"], 2, ["--transport", "local"]),
    ("hosts_without_ray", GOOD, ["--hosts", "3"], 2, ["--hosts", "--transport ray"]),
    ("address_without_ray", GOOD, ["--address", "127.0.0.1:6379"], 2, ["--address", "--transport ray"]),
    ("isolated_without_ray", GOOD, [P, "run.isolated=true"], 2, ["isolated", "ray"]),
    ("address_in_file_without_ray", GOOD + "run: {address: '10.0.0.1:6379'}\n", [], 2, ["address", "ray"]),
    ("address_unreachable", GOOD, ["--transport", "ray", "--address", "127.0.0.1:{port}"], 2,
     ["--address", "127.0.0.1:{port}", "nothing answers"]),
    ("address_without_port", GOOD, ["--transport", "ray", "--address", "somehost"], 2,
     ["--address", "somehost", "HOST:PORT"]),
    ("hosts_zero", GOOD, ["--transport", "ray", "--hosts", "0"], 2, ["run.hosts"]),
    # ---------------------------------------------------------------- fault plans
    ("kill_fraction_inverted", GOOD + "faults: [{kind: kill_fraction, fraction: 0.5, t0_s: 5, t1_s: 2}]\n", [], 2,
     ["t1_s", "t0_s"]),
    ("slowdown_inverted", GOOD + "faults: [{kind: slowdown, service: s3, factor: 2, t0_s: 5, t1_s: 1}]\n", [], 2,
     ["t1_s", "t0_s"]),
    ("kill_fraction_unknown_handler",
     GOOD + "faults: [{kind: kill_fraction, fraction: 0.5, t0_s: 1, t1_s: 2, handler: wroker}]\n", [], 2,
     ["kill_fraction", "wroker", "worker"]),
    ("slowdown_factor_zero", GOOD + "faults: [{kind: slowdown, service: s3, factor: 0, t0_s: 1, t1_s: 2}]\n", [], 2,
     ["factor"]),
    ("slowdown_factor_inf", GOOD + "faults: [{kind: slowdown, service: s3, factor: .inf, t0_s: 1, t1_s: 2}]\n", [],
     2, ["factor"]),
    ("slowdown_unknown_service",
     GOOD + "faults: [{kind: slowdown, service: nosuch, factor: 2, t0_s: 1, t1_s: 2}]\n", [], 2, ["nosuch"]),
    ("lose_data_durable", GOOD + "faults: [{kind: lose_data, service: s3, at_s: 1}]\n", [], 2,
     ["lose_data", "s3", "durable"]),
    ("lose_data_unknown_service", GOOD + "faults: [{kind: lose_data, service: nosuch, at_s: 1}]\n", [], 2,
     ["nosuch"]),
    ("unknown_fault_kind", GOOD + "faults: [{kind: meteor, at_s: 1}]\n", [], 2, ["faults.0", "meteor"]),
    ("fault_without_kind", GOOD + "faults: [{at_s: 1}]\n", [], 2, ["faults.0", "kind"]),
    ("kill_fid_zero", GOOD + "faults: [{kind: kill, fid: 0, at_s: 1}]\n", [], 2, ["fid"]),
    ("kill_negative_time", GOOD + "faults: [{kind: kill, fid: 1, at_s: -1}]\n", [], 2, ["at_s"]),
    ("kill_fraction_zero", GOOD + "faults: [{kind: kill_fraction, fraction: 0, t0_s: 1, t1_s: 2}]\n", [], 2,
     ["fraction"]),
    ("kill_fraction_above_1", GOOD + "faults: [{kind: kill_fraction, fraction: 1.5, t0_s: 1, t1_s: 2}]\n", [], 2,
     ["fraction"]),
    ("fault_unknown_field", GOOD + "faults: [{kind: kill, fid: 1, at_s: 1, when: 3}]\n", [], 2, ["when"]),
    # ---------------------------------------------------------------- handler-side ctx.invoke arguments
    ("invoke_memory_huge", BADCALL, [P, "params.memory_mb=100000"], 1, ["InvalidParameterValue", "memory_mb=100000"]),
    ("invoke_memory_tiny_sync", BADCALL, [P, "params.memory_mb=50", P, "params.sync=true"], 1,
     ["memory_mb=50", "128"]),
    ("invoke_memory_off_grid", BADCALL, [P, "params.memory_mb=1000"], 1, ["memory_mb=1000", "memory_step_mb"]),
    ("invoke_async_payload", BADCALL, [P, "params.payload_bytes=262145"], 1, ["PayloadTooLarge", "262144"]),
    ("invoke_sync_payload", BADCALL, [P, "params.payload_bytes=6291457", P, "params.sync=true"], 1,
     ["PayloadTooLarge", "6291456"]),
    ("entry_payload_too_big", BADCALL, [P, "params.entry_bytes=300000"], 2,
     ["entry invocation", "payload_async_bytes", "262144"]),
]


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    monkeypatch.setitem(EXPERIMENTS, "badcall", f"{__name__}:BadCallExperiment")
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    _profile(tmp_path, "cyc_a.yaml", f"extends: {tmp_path}/cyc_b.yaml\n")
    _profile(tmp_path, "cyc_b.yaml", f"extends: {tmp_path}/cyc_c.yaml\n")
    _profile(tmp_path, "cyc_c.yaml", f"extends: {tmp_path}/cyc_a.yaml\n")
    _profile(tmp_path, "badkey.yaml", "extends: aws_2020\nfunctions: {nic_mb: 5}\n")
    return tmp_path


def _fill(text: str, tmp: Path, port: int) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{port}", str(port))


def test_the_table_covers_at_least_80_bad_inputs():
    assert len(CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("text,args,status,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_exits_with_its_status_naming_the_field(prepared, text, args, status, words):
    port = _closed_port()
    cfg = prepared / "bad.yaml"
    cfg.write_text(_fill(text, prepared, port))
    args = [_fill(a, prepared, port) for a in args]
    out = prepared / "out"
    if "--out" not in args:
        args += ["--out", str(out)]
    res = CliRunner().invoke(app, ["run", str(cfg), *args])
    text_out = res.output
    assert res.exit_code == status, text_out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in text_out
    for w in words:
        assert _fill(w, prepared, port) in text_out, (w, text_out)
    if status == 2:
        assert "error:" in text_out and len(text_out) < 1500, "one paragraph"
        assert not out.exists(), "nothing ran, nothing was written"
        assert (prepared / "mine" / "notes.txt").read_text() == "keep me"
    else:
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "failed"
        for w in words:
            assert w in summary["reason"], (w, summary["reason"])


def test_a_config_that_is_a_directory_or_not_utf8_exits_2(tmp_path):
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(b"experiment: allreduce\ndescription: caf\xe9\n")
    for path, words in ((tmp_path, ["is a directory"]), (latin, ["not UTF-8", "0xe9"])):
        res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert all(w in res.output for w in words), res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_exits_2_before_running(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(ro / "out")])
    assert res.exit_code == 2 and "not writable" in res.output


# ------------------------------------------------------------------ sweeps
SWEEP_CASES = [
    ("grid_without_equals", GOOD, ["--grid", "workers"], ["--grid", "KEY=VALUE"]),
    ("grid_no_values", GOOD, ["--grid", "workers="], ["--grid", "no values"]),
    ("grid_empty_list", GOOD, ["--grid", "workers=[]"], ["--grid", "no values"]),
    ("grid_bad_value", GOOD, ["--grid", "workers=0,2"], ["params.workers"]),
    ("grid_memory_below_range", GOOD, ["--grid", "memory_mb=64"], ["memory_mb", "64"]),
    ("grid_memory_off_grid", GOOD, ["--grid", "memory_mb=1000,1024"], ["memory_mb=1000", "memory_step_mb"]),
    ("grid_mapping", GOOD, ["--grid", "workers={a: 1}"], ["--grid", "list"]),
    ("grid_twice", GOOD, ["--grid", "workers=1", "--grid", "workers=2"], ["--grid", "params.workers", "once"]),
    ("grid_empty_key", GOOD, ["--grid", "=1,2"], ["--grid", "empty key"]),
    ("grid_bad_yaml", GOOD, ["--grid", "workers=[1,"], ["--grid", "not valid YAML"]),
    ("sweep_section_empty_list", GOOD + "sweep: {workers: []}\n", [], ["sweep.workers", "non-empty"]),
    ("sweep_section_not_list", GOOD + "sweep: {workers: 4}\n", [], ["sweep.workers", "list"]),
    ("nothing_to_sweep", GOOD, [], ["nothing to sweep", "--grid"]),
    ("sweep_out_is_a_file", SWEEPABLE, ["--out", "{tmp}/afile"], ["--out", "is a file"]),
    ("sweep_out_foreign", SWEEPABLE, ["--out", "{tmp}/mine"], ["--out", "notes.txt"]),
]


@pytest.mark.parametrize("text,args,words", [c[1:] for c in SWEEP_CASES], ids=[c[0] for c in SWEEP_CASES])
def test_a_bad_sweep_exits_2_naming_the_option(prepared, text, args, words):
    cfg = prepared / "bad.yaml"
    cfg.write_text(text)
    args = [_fill(a, prepared, 0) for a in args]
    out = prepared / "s"
    if "--out" not in args:
        args += ["--out", str(out)]
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--serial", "--no-plot", *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "--set" not in res.output.replace("--set k=v", "")
    for w in words:
        assert w in res.output, (w, res.output)
    assert not out.exists()
    assert (prepared / "mine" / "notes.txt").read_text() == "keep me"


def test_plot_of_something_that_is_not_a_result_exits_2(tmp_path):
    for target in (tmp_path, tmp_path / "missing"):
        res = CliRunner().invoke(app, ["plot", str(target)])
        assert res.exit_code == 2 and "not a result directory" in res.output and "Traceback" not in res.output
