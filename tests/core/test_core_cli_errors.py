"""Bad input exits with status 2 and one paragraph naming the field and the fix, never a traceback
(issue 3, "Tests must show" 6)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sls_ray.cli import app

GOOD = "experiment: allreduce\nparams:\n  workers: 2\n  rounds: 1\n  floats: 100\n"

CASES = [
    # (id, config text, extra args, words the message must contain)
    ("malformed_yaml", "experiment: allreduce\nparams: {workers: 2\n", [], ["malformed YAML", "line"]),
    ("unknown_top_level_key", GOOD + "workerz: 3\n", [], ["unknown key 'workerz'", "params"]),
    ("unknown_param", GOOD.replace("workers: 2", "workerz: 2"), [], ["params.workerz", "workers"]),
    ("unknown_profile_key", GOOD + "profile:\n  functions:\n    nic_mb: 5\n", [], ["functions.nic_mb", "nic_mbs"]),
    ("unknown_s3_key", GOOD + "profile:\n  services:\n    s3:\n      latency: 0.1\n", [],
     ["unknown key 'services.s3.latency'", "latency_s"]),
    ("negative_memory", GOOD, ["--set", "params.memory_mb=-5"], ["memory_mb", "-5", "128", "3008"]),
    ("over_limit_memory", GOOD, ["--set", "params.memory_mb=99999"], ["memory_mb", "99999", "3008"]),
    ("unknown_service", GOOD, ["--set", "params.service=nosuch"], ["nosuch", "s3"]),
    ("unknown_profile", GOOD + "platform: nosuch\n", [], ["platform", "nosuch", "aws_2020"]),
    ("bad_set", GOOD, ["--set", "params.workers"], ["--set", "params.workers", "KEY=VALUE"]),
    ("bad_set_value_type", GOOD, ["--set", "params.workers=many"], ["params.workers", "many"]),
    ("unknown_experiment", "experiment: nosuch\n", [], ["experiment", "nosuch", "allreduce"]),
    ("missing_experiment", "params: {workers: 2}\n", [], ["experiment"]),
    ("negative_latency", GOOD + "profile:\n  services:\n    s3:\n      latency_s: -1\n", [], ["latency_s"]),
    ("unknown_service_kind", GOOD + "profile:\n  services:\n    cache:\n      kind: nosuchkind\n", [],
     ["nosuchkind", "memcached"]),
    ("fault_on_unknown_service", GOOD + "faults:\n  - {kind: lose_data, service: nosuch, at_s: 1}\n", [],
     ["nosuch"]),
    ("bad_transport", GOOD, ["--transport", "carrier-pigeon"], ["--transport", "local"]),
]


@pytest.mark.parametrize("text,args,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_the_field(tmp_path, text, args, words):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(tmp_path / "out"), *args])
    out = res.output
    assert res.exit_code == 2, out
    assert "error:" in out
    for w in words:
        assert w in out, (w, out)
    assert "Traceback" not in out
    assert len(out) < 1500, "one paragraph, not a dump of the config"
    assert not (tmp_path / "out").exists()


def test_a_missing_config_file_exits_2(tmp_path):
    res = CliRunner().invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2
    assert "nope.yaml" in res.output and "no such file" in res.output


def test_sweep_bad_grid_exits_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)
    for grid, word in (("workers", "KEY=VALUE"), ("workers=0,2", "params.workers"), ("memory_mb=64", "memory_mb")):
        res = CliRunner().invoke(app, ["sweep", str(cfg), "--grid", grid, "--serial", "--no-plot",
                                       "--out", str(tmp_path / "s")])
        assert res.exit_code == 2, (grid, res.output)
        assert word in res.output and "Traceback" not in res.output


def test_a_good_config_runs(tmp_path):
    cfg = tmp_path / "good.yaml"
    cfg.write_text(GOOD)
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(tmp_path / "out"),
                                   "--set", "params.service=memcached"])
    assert res.exit_code == 0, res.output
    for name in ("config.yaml", "summary.json", "invocations.csv", "storage.csv"):
        assert (tmp_path / "out" / name).exists()


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    """The real process, as a user runs it (rich output, typer's exit code)."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(GOOD + "workerz: 3\n")
    proc = subprocess.run([sys.executable, "-m", "sls_ray.cli", "run", str(cfg)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "workerz" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
