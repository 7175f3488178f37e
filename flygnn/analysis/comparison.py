"""The model's tuning against experimental results (the tables of :mod:`flygnn.analysis.known`).

Correlation of the FRIs with the known contrast preferences and of the DSIs with the known
direction selectivity (flyvis's summary measures), correlation of T4/T5 angular tuning with the
measured curves, and the angle between predicted and known preferred directions. Inputs are
the outputs of :mod:`flygnn.analysis.tuning`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flygnn.analysis import known
from flygnn.analysis.runners import moving_edge_responses
from flygnn.analysis.tuning import _as_responses, _on_grid, _split_models, peak_responses

__all__ = [
    "fri_correlation_to_known",
    "dsi_correlation_to_known",
    "correlation_to_known_tuning_curves",
    "angular_distance_to_known",
]

def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson correlation along ``axis`` ignoring pairs where either value is NaN."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    valid = ~(np.isnan(x) | np.isnan(y))
    n = valid.sum(axis=axis, keepdims=True)
    x = np.where(valid, x, 0.0)
    y = np.where(valid, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(valid, x - x.sum(axis=axis, keepdims=True) / n, 0.0)
        yc = np.where(valid, y - y.sum(axis=axis, keepdims=True) / n, 0.0)
        return (xc * yc).sum(axis=axis) / np.sqrt((xc**2).sum(axis=axis) * (yc**2).sum(axis=axis))


def _select(table: pd.DataFrame | pd.Series, types: list[str], name: str):
    missing = [t for t in types if t not in table.index]
    if missing:
        raise ValueError(f"{name} lacks cell types {missing}")
    return table.loc[types]


def fri_correlation_to_known(fri: pd.Series | pd.DataFrame) -> float | pd.Series:
    """Pearson correlation of the FRIs of the 32 types of known polarity with that polarity (+-1).

    Args:
        fri: output of :func:`~flygnn.analysis.tuning.flash_response_index` (Series over
            types or models x types).

    Returns:
        one correlation (a float, or a Series over models).
    """
    truth = known.known_polarity()
    table = fri.to_frame().T if isinstance(fri, pd.Series) else fri
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"fri must be a pandas Series or DataFrame, got {type(fri).__name__}")
    x = _select(table.T, list(truth.index), "fri").to_numpy(dtype=np.float64).T
    corr = _pearson(x, truth.to_numpy()[None])
    return float(corr[0]) if isinstance(fri, pd.Series) else pd.Series(corr, index=table.index)


def dsi_correlation_to_known(dsi: pd.DataFrame) -> float | pd.Series:
    """Pearson correlation of the max-over-intensity DSI of the 18 known types with 1 (T4/T5) / 0.

    Args:
        dsi: output of :func:`~flygnn.analysis.tuning.direction_selectivity_index`.

    Returns:
        one correlation (a float, or a Series over models).
    """
    truth = known.known_dsi()
    models, single = _split_models(dsi, "dsi")
    out = {}
    for model, table in models.items():
        x = _select(table, list(truth.index), "dsi").max(axis=1).to_numpy(dtype=np.float64)
        out[model] = float(_pearson(x, truth.to_numpy()))
    return out[None] if single else pd.Series(out, name="dsi_correlation")


_T4 = ["T4a", "T4b", "T4c", "T4d"]
_T5 = ["T5a", "T5b", "T5c", "T5d"]


def correlation_to_known_tuning_curves(responses, **stimulus_kwargs) -> pd.Series | pd.DataFrame:
    """Best correlation of T4a-d (ON) / T5a-d (OFF) angular tuning with Maisak et al. 2013.

    Peak responses on the (angle, intensity, width, speed) grid (NaN -> 0) are correlated over the
    angles with the known curves at the same angles (NaN -> 0, e.g. for flat curves); the maximum
    over (width, speed) is kept. T4 types are read at intensity 1, T5 types at intensity 0.

    Returns:
        a Series over the 8 types (one model) or a DataFrame models x types.

    **Shapes:** responses ``(n_models, n_samples, n_frames, n_cells)`` -> ``(n_models, 8)``.
    """
    resp = _as_responses(responses, moving_edge_responses, stimulus_kwargs)
    peak = np.nan_to_num(peak_responses(resp), nan=0.0)
    grid, (angles, intensities, _, _) = _on_grid(
        peak, resp, ("angle", "intensity", "width", "speed")
    )
    curves = known.tuning_curves()
    angles_mod = np.mod(angles, 360)
    if not np.isin(angles_mod, curves.index.to_numpy()).all():
        raise ValueError(f"edge angles {angles.tolist()} are not among the known angles 0..330")
    out = np.empty((grid.shape[0], 8))
    for k, cell_type in enumerate(_T4 + _T5):
        if cell_type not in resp.cell_types:
            raise ValueError(f"responses lack cell type {cell_type}")
        intensity = 1 if cell_type in _T4 else 0
        if intensity not in intensities:
            raise ValueError(f"edge intensities {intensities.tolist()} lack {intensity}")
        x = grid[:, :, list(intensities).index(intensity), :, :, resp.cell_types.index(cell_type)]
        y = curves.loc[angles_mod, cell_type].to_numpy()[None, :, None, None]
        corr = np.nan_to_num(_pearson(x, y, axis=1), nan=0.0)  # (m, width, speed)
        out[:, k] = corr.reshape(len(corr), -1).max(axis=1)
    frame = pd.DataFrame(out, index=pd.Index(resp.model_names, name="model"), columns=_T4 + _T5)
    return frame.iloc[0].rename("tuning_correlation") if len(frame) == 1 else frame


def angular_distance_to_known(pd_: pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Angle (radians, [0, pi]) between predicted and known preferred directions of T4a-d / T5a-d.

    T4 types are read in the ``"ON"`` column, T5 in ``"OFF"``; known: a 180, b 0, c 90, d 270
    degrees.
    ``d = |a mod 2pi - b mod 2pi|``, replaced by ``2pi - d`` where ``d > pi``.

    Args:
        pd_: output of :func:`~flygnn.analysis.tuning.preferred_direction`.

    Returns:
        a Series over the 8 types (one model) or a DataFrame models x types.
    """
    truth = known.preferred_directions(radians=True)
    models, single = _split_models(pd_, "preferred direction")
    rows = {}
    for model, table in models.items():
        row = {}
        for cell_type in _T4 + _T5:
            intensity = "ON" if cell_type in _T4 else "OFF"
            if intensity not in table.columns:
                raise ValueError(f"preferred direction lacks the {intensity!r} column "
                                 f"(columns: {list(table.columns)})")
            pred = _select(table, [cell_type], "preferred direction")[intensity].iloc[0]
            d = abs(np.mod(pred, 2 * np.pi) - np.mod(truth[cell_type], 2 * np.pi))
            row[cell_type] = 2 * np.pi - d if d > np.pi else d
        rows[model] = row
    if single:
        return pd.Series(rows[None], name="angular_distance")
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")
