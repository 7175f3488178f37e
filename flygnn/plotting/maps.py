"""Hex activity maps, response traces and the connectivity matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn import hexgrid
from flygnn.plotting import _common
from flygnn.plotting._common import _axes, _numpy

__all__ = ["hex_map", "traces", "connectivity_matrix"]


def hex_map(
    values,
    u=None,
    v=None,
    ax=None,
    cmap: str = "seismic",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
    label: str | None = None,
):
    """Hexagon per column at ``hexgrid.to_cartesian(u, v)``, coloured by ``values``.

    Args:
        values: one value per hexal; without ``u``/``v``, a full lattice in canonical order.
        u, v: hexal coordinates (default: ``hexgrid.disk(extent_of(len(values)))``).
        cmap, vmin, vmax: colour map and limits (default symmetric around 0 for "seismic").
        label: colour bar label, with the unit (e.g. ``"luminance (0 to 1)"``).

    Returns:
        the Figure; its hexagons are ``fig.axes[0].collections[0]`` whose array is ``values``.

    **Shapes:** ``values``, ``u``, ``v`` ``(n_hexals,)``.
    """
    from matplotlib.collections import PolyCollection

    values = _numpy(values).ravel()
    if u is None or v is None:
        u, v = hexgrid.disk(hexgrid.extent_of(len(values)))
    u, v = np.asarray(u).ravel(), np.asarray(v).ravel()
    if not len(u) == len(v) == len(values):
        lengths = (len(values), len(u), len(v))
        raise ValueError(f"values, u and v must have equal lengths, got {lengths}")
    x, y = hexgrid.to_cartesian(u, v)
    # flat-topped hexagons of circumradius 1 (neighbours are sqrt(3) apart)
    corners = np.exp(1j * np.radians(np.arange(0, 360, 60)))
    verts = np.stack([x[:, None] + corners.real, y[:, None] + corners.imag], axis=-1)
    if vmin is None and vmax is None and cmap == "seismic":
        lim = float(np.nanmax(np.abs(values))) or 1.0
        vmin, vmax = -lim, lim
    fig, ax = _axes(ax, (5, 5))
    coll = PolyCollection(verts, array=values, cmap=cmap, edgecolors="none")
    coll.set_clim(vmin, vmax)
    ax.add_collection(coll)
    ax.set_xlim(x.min() - 1.5, x.max() + 1.5)
    ax.set_ylim(y.min() - 1.5, y.max() + 1.5)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if colorbar:
        fig.colorbar(coll, ax=ax, shrink=0.8, label=label)
    if title:
        ax.set_title(title)
    return _common._finish(fig, path, dpi)


def traces(
    time,
    responses,
    labels: Sequence[str] | None = None,
    ax=None,
    xlabel: str = "time (s)",
    ylabel: str = "response (a.u.)",
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
):
    """One line per trace over time.

    **Shapes:** ``time`` ``(n_frames,)``; ``responses`` ``(n_frames,)`` or ``(n_traces, n_frames)``.
    """
    time = _numpy(time).ravel()
    data = np.atleast_2d(_numpy(responses))
    if data.shape[1] != len(time):
        raise ValueError(f"responses {data.shape} must have {len(time)} frames on the last axis")
    if labels is not None and len(labels) != len(data):
        raise ValueError(f"labels has {len(labels)} entries for {len(data)} traces")
    fig, ax = _axes(ax, (6, 3.5))
    for k, trace in enumerate(data):
        ax.plot(time, trace, label=None if labels is None else labels[k], lw=1)
    if labels is not None:
        ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return _common._finish(fig, path, dpi)


def connectivity_matrix(
    matrix: pd.DataFrame,
    ax=None,
    cmap: str = "viridis",
    log: bool = False,
    label: str = "synapses",
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
):
    """Type x type matrix image (rows: presynaptic/source, columns: postsynaptic/target).

    Args:
        matrix: values per (source type, target type); NaN = no connection.
        log: show ``log10`` of the values (zeros and NaN left blank).

    Returns:
        the Figure; ``fig.axes[0].images[0].get_array()`` holds the shown (possibly log) values.

    **Shapes:** ``matrix`` ``(n_types, n_types)``.
    """
    if not isinstance(matrix, pd.DataFrame):
        raise ValueError(f"matrix must be a pandas DataFrame, got {type(matrix).__name__}")
    data = matrix.to_numpy(dtype=np.float64)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            data = np.where(data > 0, np.log10(data), np.nan)
    n_rows, n_cols = data.shape
    fig, ax = _axes(ax, (max(4, 0.12 * n_cols + 1.5), max(4, 0.12 * n_rows + 1)))
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, interpolation="nearest", aspect="auto")
    fontsize = max(3, min(8, int(math.floor(400 / max(n_rows, n_cols, 1)))))
    columns = [str(c) for c in matrix.columns]
    ax.set_xticks(np.arange(n_cols), columns, rotation=90, fontsize=fontsize)
    ax.set_yticks(np.arange(n_rows), [str(c) for c in matrix.index], fontsize=fontsize)
    ax.set_xlabel("target type")
    ax.set_ylabel("source type")
    fig.colorbar(image, ax=ax, shrink=0.8, label=f"log10 {label}" if log else label)
    if title:
        ax.set_title(title)
    return _common._finish(fig, path, dpi)
