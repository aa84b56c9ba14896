"""Sweeps: one result directory per grid point plus sweep.csv; an interrupted sweep resumes and
reruns only the points that did not finish (summary.json, written last, marks a finished point)."""
from __future__ import annotations

import json

import pandas as pd
import yaml
from typer.testing import CliRunner

from sls_ray.cli import app

CONFIG = """\
experiment: allreduce
params:
  rounds: 1
  floats: 1000
  gflop_per_round: 0.1
"""


def _sweep(tmp_path, *extra):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--grid", "workers=1,3", "--grid", "service=s3,memcached",
                                   "--serial", "--no-plot", "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return out


def test_a_serial_sweep_writes_one_row_and_one_directory_per_point(tmp_path):
    out = _sweep(tmp_path)
    df = pd.read_csv(out / "sweep.csv")
    assert len(df) == 4
    assert sorted(zip(df["params.workers"], df["params.service"])) == [
        (1, "memcached"), (1, "s3"), (3, "memcached"), (3, "s3")]
    assert set(df["status"]) == {"ok"}
    assert (df["makespan_s"] > 0).all() and (df["cost_usd.total"] > 0).all()
    for point in df["point"]:
        d = out / point
        for name in ("config.yaml", "summary.json", "invocations.csv", "storage.csv"):
            assert (d / name).exists(), (point, name)
        # every row carries its parameters, read from the point's resolved config (never its name)
        resolved = yaml.safe_load((d / "config.yaml").read_text())
        row = df[df["point"] == point].iloc[0]
        assert resolved["params"]["workers"] == row["params.workers"]
        assert resolved["params"]["service"] == row["params.service"]
        assert json.loads((d / "summary.json").read_text())["trace_hash"] == row["trace_hash"]
    assert not list(out.rglob("*.tmp")), "every output is written atomically"


def test_rerunning_a_finished_sweep_skips_every_point(tmp_path):
    out = _sweep(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("point-*/summary.json")}
    before = pd.read_csv(out / "sweep.csv")
    _sweep(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in out.glob("point-*/summary.json")} == mtimes
    pd.testing.assert_frame_equal(pd.read_csv(out / "sweep.csv"), before)


def test_a_point_without_summary_json_is_the_only_one_rerun(tmp_path):
    out = _sweep(tmp_path)
    summaries = sorted(out.glob("point-*/summary.json"))
    victim = summaries[2]
    expected = json.loads(victim.read_text())
    mtimes = {p: p.stat().st_mtime_ns for p in summaries if p != victim}
    inv_mtime = (victim.parent / "invocations.csv").stat().st_mtime_ns
    victim.unlink()  # as if the sweep was interrupted while writing this point
    _sweep(tmp_path)
    assert victim.exists()
    assert (victim.parent / "invocations.csv").stat().st_mtime_ns != inv_mtime
    assert {p: p.stat().st_mtime_ns for p in summaries if p != victim} == mtimes
    rerun = json.loads(victim.read_text())
    assert rerun["trace_hash"] == expected["trace_hash"]  # and it is the same run, bit for bit
    assert len(pd.read_csv(out / "sweep.csv")) == 4


def test_a_sweep_draws_its_figure_from_the_csv(tmp_path):
    out = _sweep(tmp_path)
    res = CliRunner().invoke(app, ["plot", str(out)])
    assert res.exit_code == 0, res.output
    png = out / "allreduce.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resuming_with_a_different_grid_reruns_the_points_that_changed(tmp_path):
    """Points are matched by their configuration, not their position: a finished point-000 of
    workers=1 is not a finished point of workers=2."""
    out = _sweep(tmp_path)
    cfg = tmp_path / "tiny.yaml"
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--grid", "workers=2,3", "--grid", "service=s3,memcached",
                                   "--serial", "--no-plot", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "sweep.csv")
    assert sorted(zip(df["params.workers"], df["params.service"])) == [
        (2, "memcached"), (2, "s3"), (3, "memcached"), (3, "s3")]
    for _, row in df.iterrows():
        summary = json.loads((out / row["point"] / "summary.json").read_text())
        assert summary["counts"]["functions"] == row["params.workers"] + 1


def test_resuming_after_an_edit_to_a_profile_named_by_path_reruns_every_point(tmp_path):
    """The config data names the profile by path, so it does not change when the profile does;
    the resolved config does: a point run under the old profile is not a finished point."""
    profile = tmp_path / "profile.yaml"
    profile.write_text("extends: aws_2020\nservices:\n  s3:\n    kind: s3\n    latency_s: 0.02\n")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(CONFIG + f"platform: {profile}\n")
    out = tmp_path / "sweep"
    args = ["sweep", str(cfg), "--grid", "workers=2,3", "--serial", "--no-plot", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = pd.read_csv(out / "sweep.csv").set_index("params.workers")["makespan_s"]
    mtimes = {p.name: (p / "summary.json").stat().st_mtime_ns for p in out.glob("point-*")}
    assert CliRunner().invoke(app, args).exit_code == 0  # unchanged: nothing reruns
    assert {p.name: (p / "summary.json").stat().st_mtime_ns for p in out.glob("point-*")} == mtimes
    profile.write_text(profile.read_text().replace("0.02", "0.05"))
    assert CliRunner().invoke(app, args).exit_code == 0
    after = pd.read_csv(out / "sweep.csv").set_index("params.workers")["makespan_s"]
    assert (after > before).all()  # every point ran again, with the slower S3
