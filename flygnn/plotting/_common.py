"""Shared helpers of the figure modules: arrays, an Agg figure, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# colours of ON (1), OFF (-1) and unknown (0) polarity in bar plots
POLARITY_COLORS = {1: "#c0392b", -1: "#2166ac", 0: "#9e9e9e"}


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _axes(ax, figsize, polar: bool = False):
    """Use ``ax`` or make a Figure on an Agg canvas (no pyplot)."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(projection="polar" if polar else None)


def _finish(fig, path, dpi: int):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig
