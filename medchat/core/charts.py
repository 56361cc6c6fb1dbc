"""PNG charts: one way to make a figure and save it, for eval reports and training runs.

Figures are `matplotlib.figure.Figure` with the Agg canvas, never pyplot, so no GUI backend or global
figure registry is involved (safe in worker threads and headless). Saving is atomic.
"""

from __future__ import annotations

from pathlib import Path


def figure(width: float, height: float, dpi: int = 110):
    """A new Agg figure of `width` x `height` inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: Path) -> Path:
    """Write `fig` as PNG: readers see the old chart or the new one, never half of it."""
    from medchat.core.paths import atomic_write

    atomic_write(Path(path), lambda fh: fig.savefig(fh, format="png"), mode=0o644)
    return Path(path)
