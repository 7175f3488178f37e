"""Ensembles side by side: prediction quality and task error per ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn.plotting import _common

__all__ = ["ensemble_comparison"]

COLORS = ["#222222", "#c0392b", "#2166ac", "#27ae60", "#8e44ad"]
LABELS = {"fri_correlation": "FRI correlation with known polarity",
          "dsi_correlation": "DSI correlation with known selectivity",
          "task_error": "task error (validation EPE)"}


def ensemble_comparison(
    table: pd.DataFrame,
    summary: pd.DataFrame | None = None,
    columns: Sequence[str] = ("fri_correlation", "dsi_correlation", "task_error"),
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
):
    """One panel per column, one column of points per ensemble: every model (a dot), the
    ensemble's median (a bar) and, given ``summary``, the value of its median indices (a
    diamond; e.g. the FRI correlation of the median FRI per type).

    Args:
        table: one row per model with an ``ensemble`` column (e.g. the table of
            :func:`flygnn.analysis.scores.score_models` or of
            :func:`flygnn.analysis.ensemble_report.compare_ensembles`); without one, all
            rows are one ensemble.
        summary: optional, index ``(ensemble, statistic)`` with a ``median_indices`` row.
        columns: the quantities, one panel each.

    Returns:
        the Figure, ``len(columns)`` axes; in each, ``lines[2 k]`` holds ensemble ``k``'s
        models and ``lines[2 k + 1]`` its median.

    **Shapes:** ``table`` ``(n_models, n_columns)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; it has {list(table.columns)}")
    groups = dict(iter(table.groupby("ensemble", sort=False))) if "ensemble" in table \
        else {"models": table}
    fig = Figure(figsize=(1.2 + 1.1 * len(groups) * len(columns), 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    rng = np.random.default_rng(0)  # a fixed jitter: the same figure every time
    for ax, column in zip(axes, columns):
        for k, group in enumerate(groups.values()):
            values = group[column].to_numpy(dtype=float)
            color = COLORS[k % len(COLORS)]
            jitter = k + rng.uniform(-0.12, 0.12, len(values))
            ax.plot(jitter, values, "o", color=color, ms=5, alpha=0.75)
            ax.plot([k - 0.25, k + 0.25], [np.nanmedian(values)] * 2, "-", color=color, lw=2.5)
        for k, name in enumerate(groups):  # after the models: lines[2 k], lines[2 k + 1]
            row = (name, "median_indices")
            if summary is not None and row in summary.index and np.isfinite(
                    float(summary.loc[row, column])):
                ax.plot(k + 0.32, float(summary.loc[row, column]), "D",
                        color=COLORS[k % len(COLORS)], ms=7, mec="white")
        ax.set_xticks(range(len(groups)), [str(g) for g in groups])
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_title(LABELS.get(column, column.replace("_", " ")), fontsize=8)
    from matplotlib.lines import Line2D

    marks = [Line2D([], [], ls="", marker="o", color="grey", label="model"),
             Line2D([], [], color="grey", lw=2.5, label="median")]
    if summary is not None:
        marks.append(Line2D([], [], ls="", marker="D", color="grey", label="median indices"))
    # below the panels, where it covers no point
    fig.legend(handles=marks, fontsize=7, loc="lower center", ncol=len(marks), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _common._finish(fig, path, dpi)
