"""flyvis tuning indices (reference sections 8.2-8.3): FRI, peak responses, DSI, directions.

Every index takes a :class:`~flygnn.analysis.responses.Responses` (or, for the one-call forms, a
network or list of networks, which are first simulated with the standard protocol of
:mod:`flygnn.analysis.responses`). Results are pandas objects labelled by model and cell type;
with one model the model level is dropped.

Layouts:

* FRI: ``DataFrame`` (models x cell types), a ``Series`` over cell types for one model.
* DSI, preferred direction: ``DataFrame`` with index ``cell_type`` and columns ``intensity``
  (0 = OFF edges, 1 = ON edges); for several models the columns are ``(model, intensity)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from flygnn.analysis import known
from flygnn.analysis.responses import Responses
from flygnn.analysis.runners import flash_responses, moving_edge_responses

__all__ = [
    "flash_response_index",
    "time_mask",
    "stimulus_window",
    "peak_responses",
    "direction_selectivity_index",
    "preferred_direction",
    "fri_correlation_to_known",
    "dsi_correlation_to_known",
    "correlation_to_known_tuning_curves",
    "angular_distance_to_known",
]

LED_DEG = 2.25  # width of one LED position of the bar/edge stimuli, degrees
OMMATIDIUM_DEG = 5.8  # angular width of one ommatidium (column), degrees


def _as_responses(obj, runner: Callable[..., Responses], kwargs: dict) -> Responses:
    if isinstance(obj, Responses):
        if kwargs:
            raise ValueError(f"stimulus arguments {sorted(kwargs)} only apply when given a network")
        return obj
    is_net = isinstance(obj, torch.nn.Module) or (
        isinstance(obj, (list, tuple)) and obj and all(isinstance(n, torch.nn.Module) for n in obj)
    )
    if is_net:
        return runner(obj, **kwargs)
    raise ValueError(
        f"expected Responses, a Network or a list of Networks, got {type(obj).__name__}"
    )


def _require_columns(resp: Responses, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in resp.params.columns]
    if missing:
        raise ValueError(
            f"stimulus params lack column(s) {missing}; have {list(resp.params.columns)}"
        )


def _by_model(values: np.ndarray, resp: Responses, name: str) -> pd.Series | pd.DataFrame:
    """(n_models, n_cells) -> DataFrame models x cell types, or a Series for one model."""
    frame = pd.DataFrame(
        values,
        index=pd.Index(resp.model_names, name="model"),
        columns=pd.Index(resp.cell_types, name="cell_type"),
    )
    return frame.iloc[0].rename(name) if len(frame) == 1 else frame


def _by_intensity(values: np.ndarray, intensities: np.ndarray, resp: Responses) -> pd.DataFrame:
    """(n_models, n_intensities, n_cells) -> cell_type x intensity (or x (model, intensity))."""
    n_models, n_int, _ = values.shape
    if np.all(np.mod(intensities, 1) == 0):
        intensities = intensities.astype(int)
    data = values.transpose(2, 0, 1).reshape(len(resp.cell_types), n_models * n_int)
    if n_models == 1:
        columns = pd.Index(intensities, name="intensity")
    else:
        columns = pd.MultiIndex.from_product(
            [resp.model_names, intensities], names=["model", "intensity"]
        )
    return pd.DataFrame(data, index=pd.Index(resp.cell_types, name="cell_type"), columns=columns)


def _split_models(table: pd.DataFrame | pd.Series, name: str) -> tuple[dict, bool]:
    """Split a result table into {model: per-model table}; flag whether it held one model."""
    if not isinstance(table, (pd.DataFrame, pd.Series)):
        raise ValueError(f"{name} must be a pandas Series or DataFrame, got {type(table).__name__}")
    if isinstance(table, pd.DataFrame) and isinstance(table.columns, pd.MultiIndex):
        models = table.columns.get_level_values(0).unique()
        return {m: table[m] for m in models}, False
    return {None: table}, True


# --------------------------------------------------------------------------- flashes


def flash_response_index(
    responses,
    radius: int = 6,
    shift_nonnegative: bool = True,
    t_stim: float | None = None,
    **stimulus_kwargs,
) -> pd.Series | pd.DataFrame:
    """Flash response index per model and cell type (section 8.2).

    ``FRI = (on - off) / (on + off + 1e-16)`` where ``on`` / ``off`` are the maxima of the
    responses to the ON (intensity 1) / OFF (intensity 0) flash of the given radius over the
    window ``-dt <= time <= t_stim``. With ``shift_nonnegative`` the responses are first shifted by
    ``|min|`` (minimum over the window and both flashes, per model and cell), as flyvis does.

    Args:
        responses: flash :class:`Responses` (params ``intensity``, ``radius``), or a network / list
            of networks simulated with :func:`~flygnn.analysis.runners.flash_responses`
            (``stimulus_kwargs`` go there).
        radius: flash radius in hexals (-1 = full field).
        shift_nonnegative: apply the non-negativity shift.
        t_stim: flash duration in seconds; default ``responses.attrs["t_stim"]``.

    Returns:
        FRI, models x cell types (a Series over cell types for one model), in [-1, 1].

    **Shapes:** responses ``(n_models, n_samples, n_frames, n_cells)`` -> ``(n_models, n_cells)``.
    """
    resp = _as_responses(responses, flash_responses, stimulus_kwargs)
    _require_columns(resp, ("intensity", "radius"))
    if resp.attrs.get("alternations", (0, 1, 0)) != (0, 1, 0):
        raise ValueError(f"FRI needs alternations (0, 1, 0), got {resp.attrs['alternations']}")
    t_stim = resp.attrs.get("t_stim") if t_stim is None else t_stim
    if t_stim is None:
        raise ValueError("t_stim unknown: pass t_stim= or set responses.attrs['t_stim']")
    time = resp.time
    window = (time >= -resp.dt) & (time <= t_stim)
    params = resp.params.reset_index(drop=True)
    rows = []
    for intensity in (0, 1):
        hit = np.flatnonzero((params.radius == radius) & (params.intensity == intensity))
        if len(hit) != 1:
            raise ValueError(
                f"need one flash with radius={radius}, intensity={intensity}; found {len(hit)}"
            )
        rows.append(hit[0])
    r = resp.responses[:, rows][:, :, window]  # (n_models, 2, n_window, n_cells)
    if shift_nonnegative:
        r = r + np.abs(np.nanmin(r, axis=(1, 2), keepdims=True))
    off = np.nanmax(r[:, 0], axis=1)
    on = np.nanmax(r[:, 1], axis=1)
    return _by_model((on - off) / (on + off + 1e-16), resp, "fri")


# --------------------------------------------------------------------------- moving bars / edges


def stimulus_window(speed, offsets: tuple[int, int] = (-10, 11)) -> tuple[np.ndarray, np.ndarray]:
    """Start and end time (s) of a bar/edge crossing the LED positions ``arange(*offsets)``.

    ``from = start * 2.25 / 5.8``, ``to = (end - 1) * 2.25 / 5.8 + 2.25 / 5.8`` (columns),
    ``t_start = (|start * 2.25 / 5.8| - |from|) / speed`` (= 0),
    ``t_end = t_start + (to - from) / speed`` (= ``t_stim``), speed in columns per second.

    **Shapes:** ``speed`` ``(n,)`` -> two arrays ``(n,)``.
    """
    speed = np.asarray(speed, dtype=np.float64)
    start, end = offsets
    if end <= start:
        raise ValueError(f"offsets must satisfy start < end, got {offsets}")
    if np.any(speed <= 0):
        raise ValueError(f"speeds must be > 0, got {np.unique(speed[speed <= 0])}")
    from_column = start * LED_DEG / OMMATIDIUM_DEG
    to_column = (end - 1) * LED_DEG / OMMATIDIUM_DEG + LED_DEG / OMMATIDIUM_DEG
    t_start = (abs(start * LED_DEG / OMMATIDIUM_DEG) - abs(from_column)) / speed
    t_end = t_start + (to_column - from_column) / speed
    return t_start, t_end


def time_mask(responses: Responses, offsets: tuple[int, int] | None = None) -> np.ndarray:
    """Frames during which each sample's bar/edge is on screen: ``t_start <= time <= t_end``.

    Args:
        responses: moving bar/edge :class:`Responses` (params column ``speed``).
        offsets: LED positions ``(start, end)``; default ``responses.attrs["offsets"]``, else
            flyvis's ``(-10, 11)``.

    **Shapes:** ``(n_samples, n_frames)`` bool.
    """
    _require_columns(responses, ("speed",))
    offsets = offsets or responses.attrs.get("offsets", (-10, 11))
    t_start, t_end = stimulus_window(responses.params["speed"].to_numpy(), tuple(offsets))
    time = responses.time[None, :]
    return (time >= t_start[:, None]) & (time <= t_end[:, None])


def peak_responses(
    responses, norm=None, offsets: tuple[int, int] | None = None, **stimulus_kwargs
) -> np.ndarray:
    """Peak of the rectified responses within each sample's stimulus window (section 8.3).

    ``peak = max_t max(where(mask_t, r_t / norm, 0), 0)``: frames outside the window count as 0,
    NaN frames are skipped; no baseline subtraction.

    Args:
        responses: moving bar/edge :class:`Responses`, or network(s) simulated with
            :func:`~flygnn.analysis.runners.moving_edge_responses`.
        norm: optional per-model, per-cell normalisation (section 8.5; pass ``norm + 1e-6`` for
            flyvis's usual guard), broadcastable to ``(n_models, 1, 1, n_cells)``.
        offsets: see :func:`time_mask`.

    Returns:
        float32 array of peaks.

    **Shapes:** ``(n_models, n_samples, n_frames, n_cells)`` -> ``(n_models, n_samples, n_cells)``;
    ``norm`` ``(n_cells,)``, ``(n_models, n_cells)`` or ``(n_models, 1, 1, n_cells)``.
    """
    resp = _as_responses(responses, moving_edge_responses, stimulus_kwargs)
    r = resp.responses
    if norm is not None:
        norm = np.asarray(norm.detach().cpu() if isinstance(norm, torch.Tensor) else norm)
        if norm.ndim == 2:
            norm = norm[:, None, None, :]
        try:
            r = r / norm
        except ValueError as err:
            raise ValueError(f"norm of shape {norm.shape} does not broadcast to {r.shape}") from err
    mask = time_mask(resp, offsets)[None, :, :, None]
    return np.fmax(np.where(mask, r, 0), 0).max(axis=2).astype(np.float32)


def _grid(resp: Responses, columns: tuple[str, ...]):
    """Sample positions on the full grid of parameter values; raises unless it is complete."""
    _require_columns(resp, columns)
    values, codes = [], []
    for col in columns:
        uniq, code = np.unique(resp.params[col].to_numpy(), return_inverse=True)
        values.append(uniq)
        codes.append(code)
    counts = np.zeros([len(v) for v in values], dtype=int)
    np.add.at(counts, tuple(codes), 1)
    if not np.all(counts == 1):
        raise ValueError(
            f"stimulus params must hold each combination of {list(columns)} exactly once "
            f"(counts range {counts.min()}..{counts.max()})"
        )
    return values, tuple(codes)


def _on_grid(peak: np.ndarray, resp: Responses, columns: tuple[str, ...]):
    """(n_models, n_samples, n_cells) -> (n_models, *grid, n_cells) float64."""
    values, codes = _grid(resp, columns)
    out = np.empty((peak.shape[0], *[len(v) for v in values], peak.shape[2]))
    out[(slice(None), *codes)] = peak
    return out, values


def _direction_vectors(resp: Responses, norm):
    peak = peak_responses(resp, norm=norm)
    grid, (angles, _, intensities, _) = _on_grid(
        peak, resp, ("angle", "width", "intensity", "speed")
    )
    theta = np.radians(angles)[None, :, None, None, None, None]
    return grid * np.exp(1j * theta), intensities  # (m, angle, width, intensity, speed, cell)


def direction_selectivity_index(responses, norm=None, **stimulus_kwargs) -> pd.DataFrame:
    """Direction selectivity index per cell type and edge intensity (section 8.3).

    With ``z_theta = peak_theta exp(i theta)``: ``DSI = |sum_theta z| / (max_intensity
    sum_theta |z| + 1e-15)`` per (width, intensity, speed), then the mean over width and speed.
    ON and OFF DSIs of the same width and speed share the larger denominator.

    Args:
        responses: moving bar/edge :class:`Responses` (params ``angle`` in degrees, ``width``,
            ``intensity``, ``speed`` on a complete grid), or network(s) simulated with
            :func:`~flygnn.analysis.runners.moving_edge_responses`.
        norm: optional normalisation passed to :func:`peak_responses`.

    Returns:
        DSI in [0, 1]: index ``cell_type``, columns ``intensity`` (0 OFF, 1 ON), or
        ``(model, intensity)`` for several models.

    **Shapes:** ``(n_models, n_samples, n_frames, n_cells)`` -> ``(n_cells, [n_models x] 2)``.
    """
    resp = _as_responses(responses, moving_edge_responses, stimulus_kwargs)
    z, intensities = _direction_vectors(resp, norm)
    length = np.abs(z.sum(axis=1))  # (m, width, intensity, speed, cell)
    denom = np.abs(z).sum(axis=1).max(axis=2, keepdims=True)
    dsi = (length / (denom + 1e-15)).mean(axis=(1, 3))  # (m, intensity, cell)
    return _by_intensity(dsi, intensities, resp)


def preferred_direction(responses, norm=None, **stimulus_kwargs) -> pd.DataFrame:
    """Preferred direction in radians (-pi, pi]: ``angle(sum_{width, speed, theta} z_theta)``.

    Same inputs and layout as :func:`direction_selectivity_index`.
    """
    resp = _as_responses(responses, moving_edge_responses, stimulus_kwargs)
    z, intensities = _direction_vectors(resp, norm)
    return _by_intensity(np.angle(z.sum(axis=(1, 2, 4))), intensities, resp)


# --------------------------------------------------------------------------- comparisons with data


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
        fri: output of :func:`flash_response_index` (Series over types or models x types).

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
        dsi: output of :func:`direction_selectivity_index`.

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

    T4 types are read at intensity 1, T5 at intensity 0; known: a 180, b 0, c 90, d 270 degrees.
    ``d = |a mod 2pi - b mod 2pi|``, replaced by ``2pi - d`` where ``d > pi``.

    Args:
        pd_: output of :func:`preferred_direction`.

    Returns:
        a Series over the 8 types (one model) or a DataFrame models x types.
    """
    truth = known.preferred_directions(radians=True)
    models, single = _split_models(pd_, "preferred direction")
    rows = {}
    for model, table in models.items():
        row = {}
        for cell_type in _T4 + _T5:
            intensity = 1 if cell_type in _T4 else 0
            if intensity not in table.columns:
                raise ValueError(f"preferred direction lacks intensity {intensity} column")
            pred = _select(table, [cell_type], "preferred direction")[intensity].iloc[0]
            d = abs(np.mod(pred, 2 * np.pi) - np.mod(truth[cell_type], 2 * np.pi))
            row[cell_type] = 2 * np.pi - d if d > np.pi else d
        rows[model] = row
    if single:
        return pd.Series(rows[None], name="angular_distance")
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")
