"""What every NumPyWren figure script shares: the seed's numbers, and running a config once.

The seed's numbers are from ../shared/papers/numpywren.md ("Figures and tables"); each script
overlays them on its figure. Runs go to ``runs/numpywren/<name>`` (resumable: a finished run is
read back, not redone); figures and the CSVs they are drawn from go to ``results/numpywren``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sls_ray.config import apply_set, load_config, parse_set, read_yaml  # noqa: E402
from sls_ray.results import is_finished, read_summary, write_run  # noqa: E402
from sls_ray.runtime import simulate  # noqa: E402

CONFIGS = ROOT / "configs" / "numpywren"
RUNS = ROOT / "runs" / "numpywren"
RESULTS = ROOT / "results" / "numpywren"

#: seed Table 1, completion time (s): program -> (MPI, NumPyWren), N = 256K [seed]
SEED_TIME = {"svd": (5.8e4, 4.8e4), "qr": (9.9e3, 1.4e4), "gemm": (5.0e3, 8.1e3), "cholesky": (1.7e3, 2.5e3)}
#: seed Table 2, core-seconds: program -> (MPI, NumPyWren) [seed]
SEED_CORE_S = {"svd": (2.1e7, 6.2e6), "qr": (2.6e6, 2.2e6), "gemm": (1.2e6, 1.9e6), "cholesky": (4.5e5, 3.9e5)}
#: seed: NumPyWren reads 21x more bytes over the network than MPI, and is 47% slower end to end
SEED_BYTES_RATIO, SEED_SLOWDOWN = 21.0, 1.47
#: our program names for the seed's rows (SVD's distributed part is BDFAC, its first stage)
PROGRAM_OF = {"svd": "bdfac", "qr": "qr", "gemm": "gemm", "cholesky": "cholesky"}


def config_data(config: str, sets: list[str] = (), faults: list[dict] | None = None) -> dict:
    data = read_yaml(CONFIGS / config)
    for item in sets:
        key, value = parse_set(item)
        data = apply_set(data, key, value)
    if faults is not None:
        data["faults"] = faults
    return data


def run(name: str, config: str, sets: list[str] = (), faults: list[dict] | None = None) -> tuple[dict, Path]:
    """Run a config (with ``--set``-style overrides) once; return its summary and directory."""
    out = RUNS / name
    if not is_finished(out):
        print(f"running {name}: {config} {' '.join(sets)}", flush=True)
        result = simulate(load_config(data=config_data(config, sets, faults)))
        write_run(out, result)
        s = result.summary
        print(f"  -> completion {s.get('completion_s')} s virtual, {s['nondeterministic']['host_wall_s']} s real",
              flush=True)
    return read_summary(out), out


def save_figure(fig, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def write_json(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
