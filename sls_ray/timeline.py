"""A run's timeline and its one-screen summary, from the result directory's CSVs alone.

``gantt.png`` (drawn by ``sls-ray plot RUN``): a Gantt chart of every function instance —
its cold start (the INIT phase, ``init_s`` before ``start_s``), its run (``start_s`` to ``end_s``),
a mark where it ended badly (killed, timed out, out of memory, throttled, other errors) and one
where a retry began — with lanes grouped by handler; under it the number of functions alive, the
memory they hold, and the dollars accumulated over virtual time. Over each run bar, a pale stripe
marks when the function was blocked on storage requests (``storage_waits.csv``). With more than ``LANE_LIMIT``
functions, instances of a handler share lanes (first fit: an instance takes the first lane free
when it starts), which keeps every bar's interval exact; with more than that even after packing,
each handler becomes one band showing how many of its functions are alive.

What the result directory does not record, the figure does not invent: the working set inside a
function is checked against its memory size but not logged, so the memory panel shows the
memory size of the functions alive — what Lambda bills, and the ceiling of their working sets;
and services' costs are totals (per request times are not priced one by one), so the cost panel
spreads them evenly over the run beside Lambda's exact curve.

``sls-ray show RUN`` prints ``summary_renderables``: status, makespan, cost by component,
failures by kind, the busiest storage operations and the slowest functions.
"""
from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

#: above this many function instances, lanes are shared (and then aggregated per handler)
LANE_LIMIT = 300

#: invocation status -> (marker, colour, legend label) for the end-of-bar marks
MARKS: dict[str, tuple[str, str, str]] = {
    "FunctionKilled": ("X", "black", "killed"),
    "FunctionTimeout": ("|", "red", "timed out"),
    "MemoryLimitExceeded": ("v", "purple", "out of memory"),
    "Throttled": ("^", "darkorange", "throttled"),
}
OTHER_ERROR = ("o", "dimgray", "error")
RETRY = (">", "teal", "retry started")


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (figures are files, never windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------- reading a run
def read_invocations(run: Path) -> pd.DataFrame:
    """invocations.csv with ``init_s`` (0 for runs written before it existed) and ``error`` as text."""
    inv = pd.read_csv(Path(run) / "invocations.csv", keep_default_na=False)
    if "init_s" not in inv.columns:
        inv["init_s"] = 0.0
    inv["init_s"] = inv["init_s"].astype(float)
    if inv.empty:
        return inv
    inv["vm"] = inv["vm"].astype(str).str.lower().eq("true")
    inv["cold"] = inv["cold"].astype(str).str.lower().eq("true")
    return inv


def read_waits(run: Path) -> pd.DataFrame:
    """storage_waits.csv (id, t0_s, t1_s); empty for runs written before it existed."""
    path = Path(run) / "storage_waits.csv"
    if not path.exists() or path.stat().st_size <= 1:
        return pd.DataFrame(columns=["id", "t0_s", "t1_s"])
    return pd.read_csv(path)


def read_run(run: Path) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame]:
    """(summary, resolved config, invocations, storage) of a finished run directory."""
    import json

    run = Path(run)
    if not (run / "summary.json").exists():
        from sls_ray.errors import ConfigError

        raise ConfigError(f"{run}: not a finished run directory (no summary.json); pass a run's --out, or a "
                          f"sweep point such as {run}/point-000")
    summary = json.loads((run / "summary.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    storage = pd.read_csv(run / "storage.csv") if (run / "storage.csv").stat().st_size > 1 else pd.DataFrame()
    return summary, config, read_invocations(run), storage


# ---------------------------------------------------------------- the Gantt chart's data
def assign_lanes(inv: pd.DataFrame, limit: int = LANE_LIMIT) -> tuple[pd.DataFrame, str]:
    """Each instance's lane, and the mode: 'function' (one lane each), 'packed' (instances of a
    handler share lanes, first fit by start time) or 'handler' (one band per handler)."""
    rows = inv.copy()
    rows["t0"] = rows["start_s"] - rows["init_s"]
    rows = rows.sort_values(["handler", "t0", "id"], kind="stable").reset_index(drop=True)
    if len(rows) <= limit:
        rows["lane"] = np.arange(len(rows))
        return rows, "function"
    lanes = np.empty(len(rows), dtype=int)
    offset = 0
    for _, idx in rows.groupby("handler", sort=True).groups.items():
        free: list[tuple[float, int]] = []  # (time the lane frees up, lane)
        used = 0
        for i in idx:
            t0, t1 = rows.at[i, "t0"], rows.at[i, "end_s"]
            if free and free[0][0] <= t0:
                _, lane = heapq.heappop(free)
            else:
                lane, used = used, used + 1
            lanes[i] = offset + lane
            heapq.heappush(free, (t1, lane))
        offset += used
    rows["lane"] = lanes
    if offset <= limit:
        return rows, "packed"
    rows["lane"] = rows["handler"].map({h: i for i, h in enumerate(sorted(rows["handler"].unique()))})
    return rows, "handler"


def gantt_bars(inv: pd.DataFrame, limit: int = LANE_LIMIT, waits: pd.DataFrame | None = None
               ) -> tuple[pd.DataFrame, str]:
    """The bars the chart draws: one 'init' bar per cold start, one 'run' bar per instance and
    one 'wait' bar per interval blocked on storage, each ``(id, handler, lane, phase, t0, t1,
    status, attempt)`` — exactly invocations.csv's and storage_waits.csv's intervals."""
    rows, mode = assign_lanes(inv, limit)
    run = rows.assign(phase="run", t0=rows["start_s"], t1=rows["end_s"])
    cold = rows[rows["init_s"] > 0]
    init = cold.assign(phase="init", t0=cold["start_s"] - cold["init_s"], t1=cold["start_s"])
    cols = ["id", "handler", "lane", "phase", "t0", "t1", "status", "attempt"]
    parts = [init[cols], run[cols]]
    if waits is not None and not waits.empty:
        wait = waits.merge(rows[["id", "handler", "lane", "status", "attempt"]], on="id")
        parts.append(wait.assign(phase="wait", t0=wait["t0_s"], t1=wait["t1_s"])[cols])
    bars = pd.concat(parts, ignore_index=True)
    return bars, mode


# ---------------------------------------------------------------- curves over time
def step_curve(starts: np.ndarray, ends: np.ndarray, weights: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(times, level) of the sum of ``weights`` over the intervals alive at each time."""
    w = np.ones(len(starts)) if weights is None else np.asarray(weights, dtype=float)
    times = np.concatenate([starts, ends])
    deltas = np.concatenate([w, -w])
    order = np.lexsort((deltas, times))  # at equal times, ends (negative) first
    t, d = times[order], deltas[order]
    return np.concatenate([[0.0], t]), np.concatenate([[0.0], np.cumsum(d)])


def lambda_cost_curve(inv: pd.DataFrame, config: dict) -> tuple[np.ndarray, np.ndarray]:
    """Lambda dollars accumulated over time: each instance's bill (billed GB-s and its request)
    lands when it ends, as the platform reports it."""
    fn = config["profile"]["functions"]
    lam = inv[~inv["vm"]].sort_values("end_s")
    usd = lam["billed_ms"] / 1000.0 * lam["memory_mb"] / 1024.0 * fn["price_per_gb_s"] + fn["price_per_request"]
    return np.concatenate([[0.0], lam["end_s"].to_numpy()]), np.concatenate([[0.0], np.cumsum(usd.to_numpy())])


# ---------------------------------------------------------------- the figure
def draw_timeline(run: Path, limit: int = LANE_LIMIT) -> Path:
    """gantt.png of a run directory (timeline.png is the experiment's own, e.g. NumPyWren's task counts)."""
    run = Path(run)
    summary, config, inv, _ = read_run(run)
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(4, 1, figsize=(11, 9.5), sharex=True,
                             gridspec_kw={"height_ratios": [5, 1.3, 1.3, 1.3]})
    ax = axes[0]
    handlers = sorted(inv["handler"].unique()) if not inv.empty else []
    colours = {h: plt.cm.tab10(i % 10) for i, h in enumerate(handlers)}
    waits = read_waits(run)
    bars, mode = gantt_bars(inv, limit, waits) if not inv.empty else (pd.DataFrame(), "function")
    if mode == "handler":
        for i, h in enumerate(handlers):
            mine = inv[inv["handler"] == h]
            t, level = step_curve((mine["start_s"] - mine["init_s"]).to_numpy(), mine["end_s"].to_numpy())
            peak = max(level.max(), 1.0)
            ax.fill_between(t, i - 0.4, i - 0.4 + 0.8 * level / peak, step="post", color=colours[h], alpha=0.8)
            ax.text(t[-1], i, f" peak {int(peak)}", va="center", fontsize=7)
        ax.set_yticks(range(len(handlers)))
        ax.set_yticklabels(handlers)
        ax.set_ylabel("functions alive per handler (scaled)")
    elif not bars.empty:
        for phase, style in (("init", {"color": "lightgray", "hatch": "///", "edgecolor": "gray", "height": 0.8}),
                             ("run", {"height": 0.8}),
                             ("wait", {"color": "white", "alpha": 0.6, "height": 0.4})):
            sub = bars[bars["phase"] == phase]
            kw = dict(style)
            if phase == "run":
                kw["color"] = [colours[h] for h in sub["handler"]]
            ax.barh(sub["lane"], sub["t1"] - sub["t0"], left=sub["t0"], linewidth=0, **kw)
        run_bars = bars[bars["phase"] == "run"]
        for status, grp in run_bars[run_bars["status"] != "ok"].groupby("status"):
            marker, colour, _ = MARKS.get(status, OTHER_ERROR)
            ax.scatter(grp["t1"], grp["lane"], marker=marker, color=colour, s=28, zorder=3)
        retries = run_bars[run_bars["attempt"] > 0]
        ax.scatter(retries["t0"], retries["lane"], marker=RETRY[0], color=RETRY[1], s=22, zorder=3)
        # handler labels at the middle of each handler's lanes
        ticks = bars.groupby("handler")["lane"].agg(["min", "max"])
        ax.set_yticks(((ticks["min"] + ticks["max"]) / 2).to_list())
        ax.set_yticklabels(ticks.index.to_list())
        ax.invert_yaxis()
        ax.set_ylabel("one lane per function" if mode == "function" else "lanes shared by a handler's functions")
    handles = [Patch(color=colours[h], label=h) for h in handlers][:8]
    handles.append(Patch(facecolor="lightgray", hatch="///", edgecolor="gray", label="cold start (INIT)"))
    if not waits.empty and mode != "handler":
        handles.append(Patch(facecolor="white", edgecolor="gray", label="blocked on storage or a queue (pale)"))
    seen = set(inv["status"]) - {"ok"} if not inv.empty else set()
    for status in sorted(seen):
        marker, colour, label = MARKS.get(status, OTHER_ERROR)
        handles.append(Line2D([], [], marker=marker, color=colour, linestyle="", label=label))
    if not inv.empty and (inv["attempt"] > 0).any():
        handles.append(Line2D([], [], marker=RETRY[0], color=RETRY[1], linestyle="", label=RETRY[2]))
    ax.legend(handles=handles, fontsize=7, loc="upper right", ncol=2)
    fails = ", ".join(f"{k} {v}" for k, v in summary.get("failures", {}).items()) or "no failures"
    ax.set_title(f"{run.name}: {summary.get('experiment', '')} on {config.get('platform', '')} — "
                 f"{len(inv)} functions, {summary['counts'].get('cold_starts', 0)} cold, "
                 f"{summary['counts'].get('throttles', 0)} throttled invokes/requests, {fails}", fontsize=9)

    lam = inv[~inv["vm"]] if not inv.empty else inv
    starts = (lam["start_s"] - lam["init_s"]).to_numpy() if not lam.empty else np.array([])
    ends = lam["end_s"].to_numpy() if not lam.empty else np.array([])
    t, level = step_curve(starts, ends)
    axes[1].step(t, level, where="post", color="tab:blue")
    axes[1].set_ylabel("functions\nalive")
    t, gb = step_curve(starts, ends, lam["memory_mb"].to_numpy() / 1024.0 if not lam.empty else None)
    axes[2].step(t, gb, where="post", color="tab:green")
    axes[2].set_ylabel("memory size\nalive (GB)")
    makespan = float(summary["makespan_s"])
    if not lam.empty:
        t, usd = lambda_cost_curve(inv, config)
        axes[3].step(np.append(t, makespan), np.append(usd, usd[-1]), where="post", label="Lambda (billed at each end)")
    other = float(summary["cost_usd"]["total"]) - float(summary["cost_usd"].get("lambda_compute", 0.0)) - float(
        summary["cost_usd"].get("lambda_requests", 0.0))
    if other > 0:
        axes[3].plot([0.0, makespan], [0.0, other], linestyle="--", color="tab:red",
                     label="storage, queues, nodes (total, spread evenly)")
    axes[3].set_ylabel("USD so far")
    axes[3].set_xlabel("virtual time (s)")
    axes[3].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = run / "gantt.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- sls-ray show
def busiest_operations(storage: pd.DataFrame, n: int = 6) -> list[tuple[str, str, int, float]]:
    """(service, operation, requests, the service's cost) for the most-requested operations."""
    out = []
    if storage.empty:
        return out
    for _, row in storage.iterrows():
        for col in storage.columns:
            if col.startswith("req_") and pd.notna(row[col]) and row[col] > 0:
                out.append((str(row["service"]), col[4:], int(row[col]), float(row["cost_usd"])))
    return sorted(out, key=lambda r: (-r[2], r[0], r[1]))[:n]


def wait_seconds(inv: pd.DataFrame, waits: pd.DataFrame) -> pd.Series:
    """Seconds each function (by id) spent blocked on storage."""
    per = (waits["t1_s"] - waits["t0_s"]).groupby(waits["id"]).sum() if not waits.empty else pd.Series(dtype=float)
    return inv["id"].map(per).fillna(0.0)


def slowest_functions(inv: pd.DataFrame, n: int = 6, waits: pd.DataFrame | None = None) -> pd.DataFrame:
    if inv.empty:
        return inv
    rows = inv.assign(duration_s=inv["end_s"] - inv["start_s"],
                      wait_s=wait_seconds(inv, waits if waits is not None else pd.DataFrame()))
    return rows.sort_values(["duration_s", "id"], ascending=[False, True]).head(n)


def summary_renderables(run: Path) -> list[Any]:
    """What ``sls-ray show`` prints: rich tables that fit one screen."""
    from rich.table import Table
    from rich.text import Text

    summary, config, inv, storage = read_run(run)
    waits = read_waits(run)
    status = summary["status"]
    counts = summary["counts"]
    head = Text.assemble(
        (f"{Path(run)}  ", "bold"), (status, "bold green" if status == "ok" else "bold red"),
        f"  {summary.get('experiment', '')} on {config.get('platform', '')}, seed {summary.get('seed', '')}\n",
        f"makespan {summary['makespan_s']:.3f} s virtual · cost ${summary['cost_usd']['total']:.6f} · "
        f"{counts.get('functions', 0)} functions ({counts.get('cold_starts', 0)} cold, peak concurrency "
        f"{counts.get('peak_concurrency', 0)}) · {counts.get('throttles', 0)} throttles · "
        f"{counts.get('retries', 0)} retries · trace {summary.get('trace_hash', '')}")
    out: list[Any] = [head]
    if not inv.empty:
        busy = float((inv["end_s"] - inv["start_s"]).sum())
        waited = float(wait_seconds(inv, waits).sum())
        out.append(Text(f"functions ran {busy:.1f} s in all, {waited:.1f} s ({100 * waited / max(busy, 1e-12):.0f}%) "
                        f"of it blocked on storage and queue requests"))
    if summary.get("deadlock"):
        out.append(Text(str(summary["deadlock"]).split("\n")[0][:300], style="red"))

    cost = Table(title="cost by component", title_justify="left")
    cost.add_column("component")
    cost.add_column("USD", justify="right")
    cost.add_column("share", justify="right")
    total = float(summary["cost_usd"]["total"]) or 1.0
    for k, v in sorted(summary["cost_usd"].items(), key=lambda kv: -kv[1]):
        if k != "total":
            cost.add_row(k, f"{v:.6f}", f"{100 * v / total:.1f}%")

    fails = Table(title="failures by kind", title_justify="left")
    fails.add_column("kind")
    fails.add_column("n", justify="right")
    fails.add_column("first error")
    for kind, n in sorted(summary.get("failures", {}).items(), key=lambda kv: -kv[1]):
        first = inv[inv["status"] == kind]["error"].astype(str).head(1).tolist()
        fails.add_row(kind, str(n), (first[0] if first else "")[:70])
    if not summary.get("failures"):
        fails.add_row("none", "0", "")

    ops = Table(title="busiest storage operations", title_justify="left")
    for c, j in (("service", "left"), ("op", "left"), ("requests", "right"), ("service USD (all ops)", "right")):
        ops.add_column(c, justify=j)
    for svc, op, n, usd in busiest_operations(storage):
        ops.add_row(svc, op, str(n), f"{usd:.6f}")

    slow = Table(title="slowest functions", title_justify="left")
    for c, j in (("id", "right"), ("handler", "left"), ("run s", "right"), ("storage wait s", "right"),
                 ("init s", "right"), ("MB", "right"), ("status", "left")):
        slow.add_column(c, justify=j)
    for _, r in slowest_functions(inv, waits=waits).iterrows():
        slow.add_row(str(r["id"]), str(r["handler"]), f"{r['duration_s']:.3f}", f"{r['wait_s']:.3f}",
                     f"{r['init_s']:.3f}", str(r["memory_mb"]), str(r["status"]))
    from rich.columns import Columns

    out.append(Columns([cost, fails]))
    out.append(Columns([ops, slow]))
    return out
