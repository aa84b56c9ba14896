"""docs/adding.md's worked examples, run as written: the toy service (registered, used by a
function, billed) and the toy system (registered, swept by the figure harness, drawn).

The code is read out of the document itself, so the guide cannot drift from what works.
"""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sls_ray import experiment as experiment_registry
from sls_ray import harness, storage
from sls_ray.api import plot_figure, run_figure, simulate_handlers

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding.md"


def example(title: str, module: str, monkeypatch) -> types.ModuleType:
    """Exec the ```python block of docs/adding.md that starts with '# docs/adding.md: <title>'."""
    blocks = re.findall(r"```python\n(# docs/adding\.md: (.+?)\n.*?)```", DOC.read_text(), re.S)
    (code,) = [code for code, name in blocks if name == title]
    mod = types.ModuleType(module)
    monkeypatch.setitem(sys.modules, module, mod)
    exec(compile(code, f"{DOC}:{title}", "exec"), mod.__dict__)
    return mod


def test_the_toy_service_registers_and_serves_a_function(monkeypatch):
    example("toy service", "toy_vault", monkeypatch)
    monkeypatch.setitem(storage.REGISTRY, "vault", "toy_vault:Vault")

    def main(ctx, _):
        vault = ctx.storage("vault")
        assert not vault.can_list and vault.item_limit == 64 * 1024
        vault.put("k", b"x" * 1000)
        assert vault.get("k") == b"x" * 1000
        with pytest.raises(Exception, match="ItemTooLarge|above the item limit"):
            vault.put("big", b"x" * (65 * 1024))
        return ctx.now

    res = simulate_handlers({"main": main}, ("main", None), profile={"services": {"vault": {"kind": "vault"}}})
    assert res.summary["status"] == "ok", res.summary
    assert res.summary["services"]["vault"] == {"requests": 2}
    assert res.summary["cost_usd"]["vault_requests"] == pytest.approx(2e-6)


def test_the_toy_system_is_swept_and_drawn_by_the_harness(monkeypatch, tmp_path):
    mod = example("toy system", "toy_system", monkeypatch)
    monkeypatch.setitem(experiment_registry.EXPERIMENTS, "ring", "toy_system:RingExperiment")
    monkeypatch.setattr(harness, "CONFIG_DIR", tmp_path / "configs")
    (tmp_path / "configs" / "toy").mkdir(parents=True)
    (tmp_path / "configs" / "toy" / "ring.yaml").write_text(yaml.safe_dump({"experiment": "ring"}))
    (fig,) = mod.FIGURES
    written = run_figure(fig, tmp_path / "results", tmp_path / "runs", serial=True)
    assert written == [tmp_path / "results" / "toy" / "ring.csv", tmp_path / "results" / "toy" / "ring.png"]
    df = pd.read_csv(written[0])
    assert list(df["params.workers"]) == [2, 4] and (df["makespan_s"] > 0).all()
    assert plot_figure(fig, tmp_path / "results") == [written[1]]
