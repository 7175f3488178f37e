"""Tuning figures: FRI/DSI bar plots, polar tuning curves and preferred directions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn.plotting import _common
from flygnn.plotting._common import POLARITY_COLORS, _axes, _numpy

__all__ = ["index_bars", "dsi_bars", "polar_tuning", "direction_arrows",
           "preferred_direction_panels"]


def _contrast_columns(dsi: pd.DataFrame, name: str) -> pd.DataFrame:
    """``dsi`` with columns ``"OFF"`` and ``"ON"`` (intensity labels 0 and 1 are renamed)."""
    if not isinstance(dsi, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame over cell types with columns 'OFF' and 'ON'")
    dsi = dsi.rename(columns={0: "OFF", 1: "ON"})
    if not {"OFF", "ON"} <= set(dsi.columns):
        raise ValueError(f"{name} must have intensity columns 'OFF' and 'ON', "
                         f"got {list(dsi.columns)}")
    return dsi


def index_bars(
    values: pd.Series,
    polarity: pd.Series | None = None,
    errors: pd.Series | None = None,
    ax=None,
    ylabel: str = "FRI (-1 to 1, no unit)",
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
    reference: pd.Series | None = None,
    reference_label: str = "untrained network",
    error_label: str = "std over models",
):
    """Bar per cell type, coloured by known polarity (ON red, OFF blue, unknown grey).

    Args:
        values: index per cell type (e.g. FRI), bars in this order.
        polarity: known polarity per cell type (1, -1, 0); missing types count as unknown.
        errors: optional error bars (e.g. std over an ensemble), labelled ``error_label``.
        reference: optional values of a reference model (e.g. the untrained network), drawn
            as black markers over the bars, never mixed into them.
        reference_label: legend entry of ``reference``.

    Returns:
        the Figure; ``fig.axes[0].patches`` are the bars (heights = ``values``), the reference
        markers are ``fig.axes[0].lines[-1]`` and the legend names colours and markers.
    """
    from matplotlib.patches import Patch

    if not isinstance(values, pd.Series):
        raise ValueError(f"values must be a pandas Series, got {type(values).__name__}")
    pol = (polarity if polarity is not None else pd.Series(dtype=int)).reindex(values.index)
    codes = [int(p) if pd.notna(p) else 0 for p in pol]
    colors = [POLARITY_COLORS[c] for c in codes]
    fig, ax = _axes(ax, (max(6, 0.16 * len(values)), 3.2))
    x = np.arange(len(values))
    yerr = None if errors is None else _numpy(errors.reindex(values.index))
    ax.bar(x, _numpy(values), color=colors, yerr=yerr, width=0.8,
           error_kw={"elinewidth": 0.6, "capsize": 0, "ecolor": "#333333"})
    ax.axhline(0, color="k", lw=0.5)
    handles = [] if polarity is None else [
        Patch(color=POLARITY_COLORS[c], label=label)
        for c, label in ((1, "known ON"), (-1, "known OFF"), (0, "polarity unknown")) if c in codes]
    if errors is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="#333333", lw=0.6, label=error_label))
    if reference is not None:
        ref = _numpy(reference.reindex(values.index))
        handles.append(ax.plot(x, ref, ls="none", marker="_", ms=5, mew=1.5, color="k",
                               label=reference_label)[0])
    ax.set_xticks(x, [str(c) for c in values.index], rotation=90, fontsize=6)
    ax.set_xlim(-0.7, len(values) - 0.3)
    ax.set_ylabel(ylabel)
    if handles:
        ax.legend(handles=handles, fontsize=7, frameon=False, ncols=len(handles),
                  loc="lower left", bbox_to_anchor=(0, 1.0))
    if title:
        ax.set_title(title, pad=22 if handles else 6)
    return _common._finish(fig, path, dpi)


def dsi_bars(
    dsi: pd.DataFrame,
    ax=None,
    ylabel: str = "DSI (0 to 1, no unit)",
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
    errors: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
    reference_label: str = "untrained network",
    error_label: str = "std over models",
):
    """Paired bars per cell type: ON-edge (red) and OFF-edge (blue) DSI.

    Args:
        dsi: cell types x columns ``"OFF"``, ``"ON"`` (intensities 0 and 1 are accepted too).
        errors: optional error bars of the same layout (e.g. std over an ensemble).
        reference: optional DSI of a reference model (same layout), drawn as black markers on
            the bars it compares with, never mixed into them.

    Returns:
        the Figure; ``fig.axes[0].patches`` are the ON bars, then the OFF bars.

    **Shapes:** ``dsi`` ``(n_types, 2)``.
    """
    dsi = _contrast_columns(dsi, "dsi")
    fig, ax = _axes(ax, (max(6, 0.2 * len(dsi)), 3.2))
    x = np.arange(len(dsi))
    err = None if errors is None else _contrast_columns(errors, "errors").reindex(dsi.index)
    kw = {"elinewidth": 0.6, "capsize": 0, "ecolor": "#333333"}
    for contrast, shift, code in (("ON", -0.2, 1), ("OFF", 0.2, -1)):
        ax.bar(x + shift, _numpy(dsi[contrast]), width=0.4, color=POLARITY_COLORS[code],
               label=f"{contrast} edges", yerr=None if err is None else _numpy(err[contrast]),
               error_kw=kw)
    if errors is not None:
        from matplotlib.lines import Line2D

        ax.add_line(Line2D([], [], color="#333333", lw=0.6, label=error_label))
    if reference is not None:
        ref = _contrast_columns(reference, "reference").reindex(dsi.index)
        ax.plot(np.r_[x - 0.2, x + 0.2], np.r_[_numpy(ref["ON"]), _numpy(ref["OFF"])], ls="none",
                marker="_", ms=4, mew=1.5, color="k", label=reference_label)
    ax.set_xticks(x, [str(c) for c in dsi.index], rotation=90, fontsize=6)
    ax.set_xlim(-0.7, len(dsi) - 0.3)
    ax.set_ylim(0, max(1.0, float(np.nanmax(_numpy(dsi[["ON", "OFF"]])))))
    ax.set_ylabel(ylabel)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize=7, frameon=False, ncols=len(handles), loc="lower left",
              bbox_to_anchor=(0, 1.0))
    if title:
        ax.set_title(title, pad=22)
    return _common._finish(fig, path, dpi)


def polar_tuning(
    angles_deg,
    curves,
    labels: Sequence[str] | None = None,
    normalize: bool = False,
    ax=None,
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
):
    """Closed polar curves of responses over stimulus direction.

    Args:
        angles_deg: stimulus directions in degrees.
        curves: ``(n_curves, n_angles)`` array or a DataFrame (angles x curves, labels = columns).
        normalize: divide each curve by its maximum.

    **Shapes:** ``angles_deg`` ``(n_angles,)``; ``curves`` ``(n_curves, n_angles)``.
    """
    if isinstance(curves, pd.DataFrame):
        labels = [str(c) for c in curves.columns] if labels is None else labels
        curves = curves.to_numpy().T
    theta = np.radians(_numpy(angles_deg).ravel())
    data = np.atleast_2d(_numpy(curves))
    if data.shape[1] != len(theta):
        raise ValueError(f"curves {data.shape} must have {len(theta)} angles on the last axis")
    if normalize:
        data = data / np.nanmax(np.abs(data), axis=1, keepdims=True)
    fig, ax = _axes(ax, (4, 4), polar=True)
    order = np.argsort(theta)
    for k, curve in enumerate(data):
        t, c = theta[order], curve[order]
        ax.plot(np.r_[t, t[:1]], np.r_[c, c[:1]], label=None if labels is None else labels[k])
    if labels is not None:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.05, 1))
    if title:
        ax.set_title(title)
    return _common._finish(fig, path, dpi)


def direction_arrows(
    angles: pd.Series,
    reference: pd.Series | None = None,
    lengths: pd.Series | None = None,
    ax=None,
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
    other: pd.Series | None = None,
    other_lengths: pd.Series | None = None,
    other_label: str = "untrained network",
    radial_label: str = "DSI",
):
    """Polar arrows of preferred directions (radians); length = ``lengths`` (e.g. the DSI).

    Args:
        angles: direction per cell type in radians (label = index); 0 = motion to the right,
            counter-clockwise positive.
        reference: known direction per cell type in radians, drawn dashed in the same colour
            from the centre to the rim and labelled ``"<type> (known)"``.
        lengths: arrow lengths (e.g. DSI in [0, 1]); default 1. The radial axis is labelled
            ``radial_label`` and spans at least [0, 1].
        other: directions of a second model (e.g. the untrained network), thin grey arrows
            of ``other_lengths`` labelled ``other_label``.

    Returns:
        the Figure; ``fig.axes[0].lines[k]`` is the k-th arrow (ending at ``(angle, length)``),
        each followed by its dashed known direction when ``reference`` has the type.
    """
    if not isinstance(angles, pd.Series):
        raise ValueError(f"angles must be a pandas Series, got {type(angles).__name__}")
    radii = np.ones(len(angles)) if lengths is None else _numpy(lengths.reindex(angles.index))
    rmax = max(1.0, float(np.nanmax(radii)) if len(radii) else 1.0)
    fig, ax = _axes(ax, (4.5, 4.5), polar=True)
    for k, (name, angle) in enumerate(angles.items()):
        line = ax.plot([angle, angle], [0, radii[k]], lw=2, label=f"{name} (model)")[0]
        ax.annotate("", xy=(angle, radii[k]), xytext=(angle, 0.85 * radii[k]),
                    arrowprops={"arrowstyle": "-|>", "color": line.get_color(), "lw": 2})
        if reference is not None and name in reference.index:
            ref = float(reference[name])
            ax.plot([ref, ref], [0, rmax], ls="--", lw=1, color=line.get_color(),
                    label=f"{name} (known)")
            ax.text(ref, 1.3 * rmax, f"{name}\nknown", color=line.get_color(), fontsize=7,
                    ha="center", va="center")
    if other is not None:
        o_len = (np.ones(len(other)) if other_lengths is None
                 else _numpy(other_lengths.reindex(other.index)))
        for k, angle in enumerate(_numpy(other)):
            ax.plot([angle, angle], [0, o_len[k]], lw=1, color="#777777",
                    label=other_label if k == 0 else None)
    ax.set_ylim(0, rmax)
    ax.set_rlabel_position(67.5)
    ax.set_xticks(np.radians(np.arange(0, 360, 45)), [f"{d}°" for d in range(0, 360, 45)],
                  fontsize=6, color="#555555")
    ax.tick_params(axis="y", labelsize=6)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.25, 1))
    radius = f"radius: {radial_label}"
    ax.set_title(f"{title}\n({radius})" if title else radius, pad=54, fontsize=9)
    return _common._finish(fig, path, dpi)


def preferred_direction_panels(
    angles: pd.Series,
    lengths: pd.Series,
    known: pd.Series,
    groups: dict[str, Sequence[str]],
    title: str | None = None,
    other: pd.Series | None = None,
    other_lengths: pd.Series | None = None,
    other_label: str = "untrained network",
    path: str | Path | None = None,
    dpi: int = 100,
):
    """One polar panel of :func:`direction_arrows` per group of cell types (e.g. T4 and T5).

    Args:
        angles, lengths: preferred direction (radians) and DSI per cell type.
        known: the flies' preferred direction per cell type (radians), dashed and labelled.
        groups: panel title -> cell types, e.g. ``{"T4, ON edges": ["T4a", ...]}``.
        other, other_lengths: the same for a second model, drawn thin and grey.

    Returns:
        the Figure, one polar axes per group.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6 * len(groups), 5.0))
    FigureCanvasAgg(fig)
    for k, (name, types) in enumerate(groups.items()):
        ax = fig.add_subplot(1, len(groups), k + 1, projection="polar")
        types = list(types)
        direction_arrows(angles.loc[types], known, lengths.loc[types], ax=ax, title=name,
                         other=None if other is None else other.loc[types],
                         other_lengths=None if other_lengths is None else other_lengths.loc[types],
                         other_label=other_label)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.78, wspace=1.0, top=0.72)
    return _common._finish(fig, path, dpi)
