"""Full-field and disk flashes written directly onto the hexals."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch

from flygnn import hexgrid
from flygnn.stimuli.base import StimulusDataset, check_positive, check_range

__all__ = ["Flashes"]


class Flashes(StimulusDataset):
    """ON/OFF flashes of a disk (hex radius ``r``) or of the whole field on a grey baseline.

    The baseline is the mean of ``dynamic_range``; the flash intensities are its two ends.
    Each item is a sequence of periods given by ``alternations``: ``0`` = baseline
    everywhere for ``int(t_pre / dt)`` frames, ``1`` = the flash frame for
    ``int(t_stim / dt)`` frames. The flash frame is the baseline except the hexals with
    hex distance ``<= radius`` from ``(0, 0)`` (all hexals for ``radius = -1``), which are
    set to ``intensity``. Items: product of (baseline, intensity) pairs (outer) and
    ``radius`` (inner); ``params`` columns ``baseline, intensity, radius``.

    Args:
        extent: lattice radius (15 -> 721 hexals).
        dynamic_range: ``(low, high)`` luminances.
        t_stim: flash duration in seconds.
        t_pre: grey period before (and, as in flyvis, after) the flash in seconds.
        dt: time step in seconds.
        radius: hex radii; ``-1`` means full field.
        alternations: period pattern; must start with 0.

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)`` float32 (600 x 721 by default).
    """

    def __init__(
        self,
        extent: int = 15,
        dynamic_range: tuple[float, float] = (0.0, 1.0),
        t_stim: float = 1.0,
        t_pre: float = 1.0,
        dt: float = 1 / 200,
        radius: tuple[int, ...] = (-1, 6),
        alternations: tuple[int, ...] = (0, 1, 0),
    ) -> None:
        super().__init__(dt=dt, t_pre=t_pre)
        if len(dynamic_range) != 2:
            raise ValueError(f"dynamic_range must be (low, high), got {dynamic_range}")
        check_range("dynamic_range", dynamic_range, -np.inf, np.inf)
        self.t_stim = check_positive("t_stim", t_stim)
        alternations = tuple(int(a) for a in alternations)
        if not alternations or alternations[0] != 0 or set(alternations) - {0, 1}:
            raise ValueError(f"alternations must be 0/1 values starting with 0, got {alternations}")
        radius = tuple(int(r) for r in radius)
        if any(r < -1 for r in radius):
            raise ValueError(f"radius must be -1 (full field) or >= 0, got {radius}")
        self.extent = int(extent)
        self.n_hexals = hexgrid.num_hexals(self.extent)
        self.dynamic_range = tuple(float(x) for x in dynamic_range)
        self.alternations = alternations
        baseline = float(np.mean(self.dynamic_range))
        rows = [
            (baseline, intensity, r)
            for intensity, r in itertools.product(self.dynamic_range, radius)
        ]
        self.params = pd.DataFrame(rows, columns=["baseline", "intensity", "radius"])
        self._u, self._v = hexgrid.disk(self.extent)

    def flash_frame(self, baseline: float, intensity: float, radius: int) -> torch.Tensor:
        """The frame shown during an ON period. **Shapes:** ``(n_hexals,)``."""
        frame = torch.full((self.n_hexals,), baseline, dtype=torch.float32)
        mask = np.ones(self.n_hexals, bool) if radius < 0 else (
            hexgrid.hex_distance(self._u, self._v) <= radius
        )
        frame[torch.as_tensor(mask)] = intensity
        return frame

    def _item(self, index: int) -> torch.Tensor:
        row = self.params.iloc[index]
        on = self.flash_frame(row.baseline, row.intensity, int(row.radius))
        grey = torch.full_like(on, row.baseline)
        n_pre, n_stim = int(self.t_pre / self.dt), int(self.t_stim / self.dt)
        parts = [
            (on if a else grey).expand(n_stim if a else n_pre, self.n_hexals)
            for a in self.alternations
        ]
        return torch.cat(parts).contiguous()

    @property
    def n_frames(self) -> int:
        n_pre, n_stim = int(self.t_pre / self.dt), int(self.t_stim / self.dt)
        return sum(n_stim if a else n_pre for a in self.alternations)
