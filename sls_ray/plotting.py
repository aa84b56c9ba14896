"""Drawing figures from result CSVs: the one place that picks matplotlib's backend.

Every figure in the project is drawn on a headless machine (CI, a Ray worker, a laptop over
ssh), so the non-interactive Agg backend is chosen here, once, before pyplot is first
imported; plotting code asks :func:`pyplot` for the module instead of importing it itself.
:func:`overlay_paper` draws a paper's published values over ours in one visual language
(hollow black markers, "paper" in the legend) so every figure reads the same way.
"""
from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from sls_ray.results import atomic_write

PAPER_LABEL = "paper"  # legend label of a paper's own numbers, on every figure


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def overlay_paper(ax: Any, x: Sequence[float], y: Sequence[float], *, label: str = PAPER_LABEL,
                  marker: str = "o", color: str = "black", size: float = 10.0,
                  annotate: bool = False, fmt: str = "{:g}") -> None:
    """Draw a paper's values at ``(x, y)`` on ``ax`` as hollow markers above our own plot.

    NaN values (a point the paper does not give) are skipped, so a paper's sparse table
    overlays a dense sweep without special cases. ``marker="_"`` draws a horizontal tick,
    the right shape over a bar; ``annotate`` writes each value beside its marker.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    keep = ~np.isnan(ys)
    if not keep.any():
        return
    filled = marker in ("_", "|", "x", "+")  # line markers have no face to leave hollow
    ax.plot(xs[keep], ys[keep], linestyle="none", marker=marker, markersize=size,
            markerfacecolor=color if filled else "none", markeredgecolor=color,
            markeredgewidth=2.0 if filled else 1.5, color=color, label=label, zorder=3)
    if annotate:
        for xi, yi in zip(xs[keep], ys[keep]):
            ax.annotate(fmt.format(yi), (xi, yi), xytext=(6, 0), textcoords="offset points",
                        ha="left", va="center", fontsize=6, color=color)


def save_png(fig: Any, path: Path, dpi: int = 120) -> Path:
    """Lay out, write (atomically, as every result file) and close one figure.

    Closing frees the figure's memory: a harness run draws many.
    """
    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write(Path(path), buf.getvalue())
    return Path(path)
