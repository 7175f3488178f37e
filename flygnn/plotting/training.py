"""Training figures: the loss curve and prediction quality against task error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn.plotting import _common
from flygnn.plotting._common import _axes

__all__ = ["loss_curve", "prediction_quality"]


def loss_curve(
    log: pd.DataFrame,
    ax=None,
    smooth: int = 50,
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
):
    """Training loss per iteration (raw and running mean) and validation l2norm / EPE.

    Args:
        log: a training log (``flygnn.train`` ``log.csv``) with columns ``iteration``,
            ``loss`` and optionally ``val_l2norm``, ``val_epe`` (NaN where not validated).
        smooth: window (iterations) of the running mean of the training loss.

    Returns:
        the Figure: ``axes[0]`` holds the loss lines (raw, running mean, validation
        l2norm), ``axes[1]`` (a twin axis) the validation EPE when present.

    **Shapes:** ``log`` ``(n_rows, columns)``.
    """
    if not isinstance(log, pd.DataFrame) or not {"iteration", "loss"} <= set(log.columns):
        raise ValueError("log must be a DataFrame with columns 'iteration' and 'loss'")
    fig, ax = _axes(ax, (6, 3.5))
    it = log["iteration"].to_numpy(dtype=np.float64)
    loss = log["loss"].to_numpy(dtype=np.float64)
    ax.plot(it, loss, color="#bbbbbb", lw=0.6, label="train l2norm")
    if len(loss) > 1:
        mean = pd.Series(loss).rolling(max(1, min(smooth, len(loss))), min_periods=1).mean()
        ax.plot(it, mean.to_numpy(), color="#222222", lw=1.2, label=f"running mean ({smooth})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("l2norm")
    if "val_l2norm" in log and log["val_l2norm"].notna().any():
        val = log.dropna(subset=["val_l2norm"])
        ax.plot(val["iteration"], val["val_l2norm"], "o-", color="#c0392b", ms=3,
                label="val l2norm")
    lines, labels = ax.get_legend_handles_labels()
    if "val_epe" in log and log["val_epe"].notna().any():
        val = log.dropna(subset=["val_epe"])
        twin = ax.twinx()
        twin.plot(val["iteration"], val["val_epe"], "s--", color="#2166ac", ms=3, label="val EPE")
        twin.set_ylabel("EPE")
        more = twin.get_legend_handles_labels()
        lines, labels = lines + more[0], labels + more[1]
    ax.legend(lines, labels, fontsize=7, loc="upper right")
    if title:
        ax.set_title(title)
    return _common._finish(fig, path, dpi)


def prediction_quality(
    table: pd.DataFrame,
    quality: Sequence[str] = ("fri_correlation", "dsi_correlation"),
    error: str = "task_error",
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
):
    """Task error against prediction quality, one point per model (Lappalainen et al. 2024,
    Fig. 2): a panel per quality column; with an ``ensemble`` column (from
    :func:`flygnn.analysis.ensemble_report.compare_ensembles`) one colour per ensemble, its
    median as a large marker and its Spearman rho in the legend.

    Args:
        table: :func:`flygnn.analysis.ensemble_report.prediction_table` (or the comparison's
            table).
        quality: the columns on the y axes.
        error: the task-error column on the x axes.

    Returns:
        the Figure, ``len(quality)`` axes.

    **Shapes:** ``table`` ``(n_models, columns)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from flygnn.analysis.ensemble_report import task_error_relation

    missing = [c for c in (error, *quality) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; it has {list(table.columns)}")
    groups = dict(iter(table.groupby("ensemble", sort=False))) if "ensemble" in table \
        else {None: table}
    fig = Figure(figsize=(3.4 * len(quality), 3.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(quality), squeeze=False)[0]
    colors = ["#222222", "#c0392b", "#2166ac", "#27ae60", "#8e44ad"]
    for ax, column in zip(axes, quality):
        for k, (name, group) in enumerate(groups.items()):
            rho = task_error_relation(group, (column,), error).loc[column, "spearman"]
            label = f"{name or 'models'} (n={len(group)}, rho={rho:.2f})"
            color = colors[k % len(colors)]
            ax.plot(group[error], group[column], "o", color=color, ms=5, alpha=0.7, label=label)
            ax.plot(group[error].median(), group[column].median(), "D", color=color, ms=10,
                    mec="white")
        ax.set_xlabel(error.replace("_", " "))
        ax.set_ylabel(column.replace("_", " "))
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _common._finish(fig, path, dpi)
