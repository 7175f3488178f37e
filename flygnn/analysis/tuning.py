"""flyvis tuning indices (reference sections 8.2-8.3): FRI, peak responses, DSI, directions.

Every index takes a :class:`~flygnn.analysis.responses.Responses` (or, for the one-call forms, a
network or list of networks, which are first simulated with the standard protocol of
:mod:`flygnn.analysis.responses`). Results are pandas objects labelled by model and cell type;
with one model the model level is dropped.

Layouts:

* FRI: ``DataFrame`` (models x cell types), a ``Series`` over cell types for one model.
* DSI, preferred direction: ``DataFrame`` with index ``cell_type`` and columns ``intensity``
  (``"OFF"`` for edges of intensity 0, ``"ON"`` for intensity 1; other intensities keep their
  value); for several models the columns are ``(model, intensity)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from flygnn.analysis.responses import Responses
from flygnn.analysis.runners import flash_responses, moving_edge_responses

__all__ = [
    "flash_response_index",
    "time_mask",
    "stimulus_window",
    "peak_responses",
    "direction_selectivity_index",
    "preferred_direction",
]

# column labels of edge intensities 0 (dark edges on grey) and 1 (bright edges)
CONTRAST = {0: "OFF", 1: "ON"}

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
    if set(intensities.tolist()) <= set(CONTRAST):
        intensities = np.asarray([CONTRAST[i] for i in intensities.tolist()], dtype=object)
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
            (``stimulus_kwargs`` go there; by default only the flash of ``radius`` is simulated).
        radius: flash radius in hexals (-1 = full field).
        shift_nonnegative: apply the non-negativity shift.
        t_stim: flash duration in seconds; default ``responses.attrs["t_stim"]``.

    Returns:
        FRI, models x cell types (a Series over cell types for one model), in [-1, 1].

    **Shapes:** responses ``(n_models, n_samples, n_frames, n_cells)`` -> ``(n_models, n_cells)``.
    """
    if not isinstance(responses, Responses):  # a network: simulate the flash asked for
        stimulus_kwargs.setdefault("radius", (radius,))
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
                f"need one flash with radius={radius}, intensity={intensity}; found {len(hit)} "
                f"(the responses have radii {sorted(set(params.radius.tolist()))})"
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
            :func:`~flygnn.analysis.runners.moving_edge_responses` (its keyword arguments, e.g.
            ``progress=`` or ``cache=``, go there: by default a progress bar appears on a
            terminal, and the rendered edges and the responses are cached on disk, so the same
            call on the same network returns in seconds).
        norm: optional normalisation passed to :func:`peak_responses`.

    Returns:
        DSI in [0, 1]: index ``cell_type``, columns ``intensity`` (``"OFF"``, ``"ON"``), or
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
