"""Temporal helpers: stretch a frame sequence to a duration and pad it to a length.

Frame counts always use truncation, ``n = int(t / dt)``, as flyvis does.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["n_frames", "resample_indices", "resample", "pad"]

_PAD_MODES = ("value", "continue", "reflect")


def n_frames(t: float, dt: float) -> int:
    """Number of frames ``int(t / dt)`` of a period ``t`` seconds at step ``dt`` seconds."""
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if t < 0:
        raise ValueError(f"duration t must be >= 0, got {t}")
    return int(t / dt)


def resample_indices(n_source: int, t: float, dt: float) -> torch.Tensor:
    """Source frame per output frame: ``trunc(linspace(0, n_source - 1, int(t / dt)))``.

    The linspace is evaluated in float32 (torch) and truncated, so each source frame is
    repeated about ``int(t/dt) / n_source`` times.

    **Shapes:** returns int64 ``(int(t / dt),)``.
    """
    if n_source < 1:
        raise ValueError(f"cannot resample an empty sequence (n_source={n_source})")
    steps = n_frames(t, dt)
    return torch.linspace(0, n_source - 1, steps, dtype=torch.float32).long()


def resample(frames, t: float, dt: float, dim: int = 0):
    """Stretch ``frames`` along ``dim`` to ``int(t / dt)`` frames by repeating source frames.

    Args:
        frames: torch tensor or numpy array; the frame axis is ``dim``.
        t: duration in seconds the sequence should last.
        dt: time step in seconds.
        dim: frame axis.

    Returns:
        Same type as ``frames``, ``out[k] = frames[trunc(linspace(0, n - 1, int(t/dt))[k])]``.

    **Shapes:** ``(..., n, ...)`` -> ``(..., int(t / dt), ...)`` along ``dim``.
    """
    idx = resample_indices(frames.shape[dim], t, dt)
    if isinstance(frames, np.ndarray):
        return np.take(frames, idx.numpy(), axis=dim)
    return torch.index_select(frames, dim, idx.to(frames.device))


def pad(
    frames,
    t: float,
    dt: float,
    mode: str = "value",
    value: float = 0.0,
    where: str = "end",
    dim: int = 0,
):
    """Pad ``frames`` along ``dim`` to ``int(t / dt)`` frames (no-op if already that long).

    Args:
        frames: torch tensor or numpy array.
        t: target duration in seconds.
        dt: time step in seconds.
        mode: ``"value"`` (constant ``value``), ``"continue"`` (repeat the outermost frame)
            or ``"reflect"`` (mirror without repeating the edge frame, as ``np.pad``).
        value: fill value for ``mode="value"`` (may be ``nan``).
        where: ``"end"`` or ``"start"``.
        dim: frame axis.

    **Shapes:** ``(..., n, ...)`` -> ``(..., max(n, int(t / dt)), ...)`` along ``dim``.
    """
    if mode not in _PAD_MODES:
        raise ValueError(f"pad mode must be one of {_PAD_MODES}, got {mode!r}")
    if where not in ("end", "start"):
        raise ValueError(f"pad where must be 'end' or 'start', got {where!r}")
    n = frames.shape[dim]
    n_pad = n_frames(t, dt) - n
    if n_pad <= 0:
        return frames
    if n == 0 and mode != "value":
        raise ValueError(f"cannot pad an empty sequence with mode {mode!r}")
    if mode == "value":
        shape = list(frames.shape)
        shape[dim] = n_pad
        if isinstance(frames, np.ndarray):
            if not np.issubdtype(frames.dtype, np.floating) and not float(value).is_integer():
                frames = frames.astype(np.float64)
            parts = [frames, np.full(shape, value, dtype=frames.dtype)]
        else:
            if not frames.is_floating_point() and not float(value).is_integer():
                frames = frames.to(torch.get_default_dtype())
            parts = [frames, torch.full(shape, value, dtype=frames.dtype, device=frames.device)]
        if where == "start":
            parts = parts[::-1]
        cat = np.concatenate if isinstance(frames, np.ndarray) else torch.cat
        kw = {"axis": dim} if isinstance(frames, np.ndarray) else {"dim": dim}
        return cat(parts, **kw)
    # index based modes
    if where == "end":
        idx = np.arange(n, n + n_pad)
    else:
        idx = np.arange(-n_pad, 0)
    if mode == "continue":
        idx = np.clip(idx, 0, n - 1)
    else:  # reflect
        if n == 1:
            idx = np.zeros_like(idx)
        else:
            period = 2 * (n - 1)
            idx = np.mod(idx, period)
            idx = np.where(idx >= n, period - idx, idx)
    full = np.concatenate([np.arange(n), idx]) if where == "end" else np.concatenate(
        [idx, np.arange(n)]
    )
    if isinstance(frames, np.ndarray):
        return np.take(frames, full, axis=dim)
    return torch.index_select(frames, dim, torch.as_tensor(full, device=frames.device))
