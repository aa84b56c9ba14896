"""`sls-ray profile`: the CLI reaches INFless's profiler through its PROFILERS registry (by path)."""
from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from sls_ray.cli import app


def test_profile_writes_a_table_the_profile_db_reads(tmp_path):
    out = tmp_path / "p.csv"
    res = CliRunner().invoke(app, ["profile", "--model", "textcnn", "--reps", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert set(table["kind"]) == {"calibration", "op", "model"}
    assert set(table.loc[table.kind == "model", "name"]) == {"textcnn"}
    assert (table["seconds"] > 0).all()


def test_an_unknown_model_or_system_exits_2_naming_it(tmp_path):
    res = CliRunner().invoke(app, ["profile", "--model", "nope", "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 2 and "nope" in res.output and "textcnn" in res.output
    res = CliRunner().invoke(app, ["profile", "--system", "cirrus", "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 2 and "--system" in res.output and "infless" in res.output
    assert not (tmp_path / "p.csv").exists()
