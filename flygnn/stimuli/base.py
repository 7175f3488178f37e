"""Common parts of the stimulus datasets: parameter table, time step, time axis, checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

__all__ = ["StimulusDataset", "check_positive", "check_range", "check_choice"]


def check_positive(name: str, value: float, strict: bool = True) -> float:
    """Return ``float(value)``; raise ``ValueError`` naming ``name`` unless it is > 0 (>= 0)."""
    value = float(value)
    ok = value > 0 if strict else value >= 0
    if not ok or not math.isfinite(value):
        raise ValueError(f"{name} must be {'> 0' if strict else '>= 0'}, got {value}")
    return value


def check_range(name: str, values, low: float = 0.0, high: float = 1.0) -> None:
    """Raise ``ValueError`` naming ``name`` if any value is NaN or outside ``[low, high]``."""
    arr = np.asarray(values, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    if arr.size and (arr.min() < low or arr.max() > high):
        raise ValueError(
            f"{name} must lie in the dynamic range [{low}, {high}], "
            f"got values in [{arr.min()}, {arr.max()}]"
        )


def check_finite(name: str, values) -> None:
    """Raise ``ValueError`` naming ``name`` if any value is not a finite number."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {values!r}") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite numbers, got {values!r}")


def check_choice(name: str, value, choices) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


class StimulusDataset(Dataset):
    """Base class: items are ``(T, n_hexals)`` float32 tensors sampled every ``dt`` seconds.

    Subclasses set ``self.params`` (one row per item, in item order) and implement
    ``_item(index)``; items are re-derived whenever ``dt`` changes (``_dt_changed`` hook).
    The analysis time axis is ``time_k = k dt - t_pre`` (float64), ``t_pre`` being the
    dataset's own grey pre-period.

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)``; ``time`` is ``(n_frames,)``.
    """

    params: pd.DataFrame
    t_pre: float = 0.0
    n_hexals: int = 721

    def __init__(self, dt: float, t_pre: float = 0.0) -> None:
        self._dt = check_positive("dt", dt)
        self.t_pre = check_positive("t_pre", t_pre, strict=False)

    @property
    def dt(self) -> float:
        """Time step in seconds; setting it re-derives the items."""
        return self._dt

    @dt.setter
    def dt(self, value: float) -> None:
        self._dt = check_positive("dt", value)
        self._dt_changed()

    def _dt_changed(self) -> None:
        """Hook: drop anything cached that depends on ``dt``."""

    def __len__(self) -> int:
        return len(self.params)

    def _item(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self)
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        return self._item(int(index) % n)

    @property
    def n_frames(self) -> int:
        """Frames per item at the current ``dt`` (items share one length)."""
        return int(self[0].shape[0])

    @property
    def time(self) -> np.ndarray:
        """Analysis time of each frame, ``k dt - t_pre`` seconds (float64)."""
        return np.arange(self.n_frames, dtype=np.float64) * self.dt - self.t_pre

    def stack(self, indices=None) -> torch.Tensor:
        """All (or the selected) items as one ``(B, T, n_hexals)`` tensor."""
        indices = range(len(self)) if indices is None else indices
        return torch.stack([self[int(i)] for i in indices])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_items={len(self)}, dt={self.dt}, t_pre={self.t_pre})"
