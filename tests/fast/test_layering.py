"""The layering rule (STYLE.md): paper systems import the core only through ``sls_ray.api``, and
the core never imports a paper system (it names them by path in its registries)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "sls_ray"
#: paper systems held to the rule; add a system here when it lands (INFless, Cirrus)
SYSTEMS = ["lambdaml", "numpywren", "cirrus", "infless"]


def imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_paper_system_imports_the_core_only_through_the_public_api(system):
    bad = [f"{p.relative_to(PKG.parent)}: {m}" for p in sorted((PKG / system).rglob("*.py")) for m in imports(p)
           if m.startswith("sls_ray") and m != "sls_ray.api" and not m.startswith(f"sls_ray.{system}")]
    assert not bad, "import these names from sls_ray.api (add them there if missing):\n" + "\n".join(bad)


def test_the_core_never_imports_a_paper_system():
    systems = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()} - {
        "storage", "transport", "actors"}
    core = [p for p in PKG.rglob("*.py") if p.relative_to(PKG).parts[0] not in systems]
    bad = [f"{p.relative_to(PKG.parent)}: {m}" for p in core for m in imports(p)
           if any(m == f"sls_ray.{s}" or m.startswith(f"sls_ray.{s}.") for s in systems)]
    assert not bad, "\n".join(bad)
