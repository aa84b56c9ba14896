"""Print exact pins for constraints.txt: the project's dependencies (pyproject.toml, every extra)
and everything they require, at the versions installed in the running environment.

    python .ci/constraints.py > constraints.txt

Only what the project needs is pinned (not whatever else the venv holds); torch's local build
tag (+cpu) is dropped so the pin matches the CPU wheel and the PyPI one alike.
"""
from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

HEADER = """\
# Exact versions the project is tested with: the README's installs and .ci/run use them
# (pip install -c constraints.txt ...); pyproject.toml states the compatible ranges.
# Regenerate from a working environment: python .ci/constraints.py > constraints.txt"""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str]) -> dict[str, str]:
    env = default_environment()
    pins: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    stack = [Requirement(r) for r in roots]
    while stack:
        req = stack.pop()
        key = (norm(req.name), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(req.name)  # a missing one is an error: install the project first
        pins[norm(req.name)] = dist.version.split("+")[0]
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in ["", *req.extras]):
                stack.append(sub)
    return pins


def main() -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    roots = list(project["dependencies"]) + [r for extra in project.get("optional-dependencies", {}).values()
                                             for r in extra]
    print(HEADER)
    for name, version in sorted(closure(roots).items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    sys.exit(main())
