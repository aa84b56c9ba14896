"""``sls-ray whatif``: the same experiment under several profiles, side by side, resumable."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sls_ray.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_whatif_runs_each_profile_and_joins_them(tmp_path):
    out = tmp_path / "w"
    args = ["whatif", str(ROOT / "configs/quickstart.yaml"), "--profiles", "aws_2020,aws_2026",
            "--grid", "workers=2", "--grid", "service=dynamodb,s3", "--set", "params.rounds=1",
            "--out", str(out), "--serial"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "whatif.csv")
    assert sorted(table["platform"].unique()) == ["aws_2020", "aws_2026"] and len(table) == 4
    assert (out / "whatif.png").stat().st_size > 10_000
    dyn = table[table["params.service"] == "dynamodb"].set_index("platform")
    # DynamoDB on-demand requests cost half in 2026 (Nov 2024 price cut); the polls differ a little
    # (cold starts are shorter), so compare dollars per request
    per_request = dyn["cost_usd.dynamodb_requests"] / dyn["storage_requests.dynamodb"]
    assert 0.4 < per_request["aws_2026"] / per_request["aws_2020"] < 0.6
    # rerunning skips every finished point: the summaries are not rewritten
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")}
    assert len(stamps) == 4
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")} == stamps
    (out / "whatif.png").unlink()
    res = runner.invoke(app, ["plot", str(out)])  # redrawn from whatif.csv alone
    assert res.exit_code == 0 and (out / "whatif.png").exists(), res.output


def test_whatif_without_a_grid_runs_one_point_per_profile(tmp_path):
    cfg = tmp_path / "one.yaml"
    cfg.write_text("# sls-ray whatif one.yaml --profiles aws_2020,aws_2026\nexperiment: allreduce\n"
                   "params: {workers: 2, rounds: 1, floats: 1000}\n")
    res = runner.invoke(app, ["whatif", str(cfg), "--profiles", "aws_2020,aws_2026", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "o" / "whatif.csv")
    assert list(table["platform"]) == ["aws_2020", "aws_2026"]
    # 1 ms billing and a billed INIT: the same functions are billed differently
    inv = {p: pd.read_csv(tmp_path / "o" / p / "point-000" / "invocations.csv") for p in table["platform"]}
    assert (inv["aws_2020"]["billed_ms"] % 100 == 0).all()
    assert (inv["aws_2026"]["billed_ms"] % 100 != 0).any()


@pytest.mark.parametrize("profiles,needle", [("aws_2020", "two or more"), ("aws_2020,aws_1999", "aws_1999")])
def test_whatif_bad_profiles_exit_2_naming_them(tmp_path, profiles, needle):
    res = runner.invoke(app, ["whatif", str(ROOT / "configs/quickstart.yaml"), "--profiles", profiles,
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and needle in res.output, res.output


def test_whatif_names_a_profile_file_by_its_name_not_its_path(tmp_path):
    """A paper system's own profile is a YAML path (configs/cirrus/platform_2026.yaml): its column
    value and directory are the profile's ``name:``, never OUT/<absolute path>."""
    from sls_ray.errors import ConfigError
    from sls_ray.whatif import run_whatif

    old, new = str(ROOT / "configs/platforms/aws_2020.yaml"), str(ROOT / "configs/cirrus/platform_2026.yaml")
    out = tmp_path / "w"
    table = run_whatif(str(ROOT / "configs/quickstart.yaml"), [old, new], ["workers=2", "service=s3"],
                       ["params.rounds=1"], out, parallel=False)
    assert list(table["platform"]) == ["aws_2020", "aws_2026_cirrus"]
    assert (out / "aws_2020" / "point-000" / "summary.json").exists()
    assert (out / "aws_2026_cirrus" / "point-000" / "summary.json").exists()
    with pytest.raises(ConfigError, match="share a name"):
        run_whatif(str(ROOT / "configs/quickstart.yaml"), [old, "aws_2020"], [], [], tmp_path / "x", parallel=False)
