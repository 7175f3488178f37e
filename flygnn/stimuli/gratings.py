"""Drifting square-wave and sine gratings, evaluated directly at the hexal centres.

Design choice: flyvis renders gratings through ``HexEye`` (a pixel image per frame,
averaged per hexagon). Here the grating is evaluated analytically at each hexal centre,
which is exact, cheap (no monitor images) and free of the hexagon-averaging blur; it is
not meant to reproduce flyvis's (unused by its analyses) grating frames.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import torch

from flygnn import hexgrid
from flygnn.stimuli.base import (
    StimulusDataset,
    check_choice,
    check_finite,
    check_positive,
    check_range,
)
from flygnn.stimuli.temporal import n_frames

__all__ = ["Gratings", "hexal_degrees"]


def hexal_degrees(extent: int = 15, ommatidium_deg: float = 5.8) -> tuple[np.ndarray, np.ndarray]:
    """Hexal centres in degrees of visual angle, x right / y up (neighbours 5.8 deg apart).

    ``x = 1.5 v s``, ``y = -sqrt(3) (u + v/2) s`` with ``s = ommatidium_deg / sqrt(3)``.

    **Shapes:** returns two float64 arrays ``(n_hexals,)``.
    """
    u, v = hexgrid.disk(extent)
    x, y = hexgrid.to_cartesian(u, v)
    s = ommatidium_deg / math.sqrt(3.0)
    return x * s, y * s


class Gratings(StimulusDataset):
    """Gratings drifting in direction ``angle`` (degrees; 0 = rightward, 90 = upward).

    At hexal centre ``p`` (degrees) and time ``t`` since stimulus onset the phase is
    ``phi = 2 pi ((p . e_angle) / period - f t)`` with ``f = temporal_frequency`` (Hz), so
    the pattern moves at ``speed = period f`` deg/s along ``e_angle``. Luminance
    ``bg + bg * contrast * w(phi)`` with ``w = sin`` (``"sine"``) or ``sign(sin)`` with
    ``sign(0) = +1`` (``"square"``). Frames: ``int(t_pre/dt)`` grey, ``int(t_stim/dt)``
    grating frames (``t = k dt``), grey to ``int((t_pre + t_stim + t_post)/dt)``.
    Give ``speeds`` (deg/s) instead of ``temporal_frequencies`` to set ``f = speed/period``.

    Items: product of waveform, angle, period, temporal frequency (or speed), contrast
    (inner); ``params`` columns ``waveform, angle, period, temporal_frequency, speed,
    contrast``.

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)`` float32.
    """

    def __init__(
        self,
        angles=tuple(range(0, 360, 30)),
        periods=(30.0,),
        temporal_frequencies=(1.0,),
        speeds=None,
        contrasts=(1.0,),
        waveforms=("square",),
        t_pre: float = 1.0,
        t_stim: float = 2.0,
        t_post: float = 1.0,
        dt: float = 1 / 200,
        bg: float = 0.5,
        extent: int = 15,
    ) -> None:
        super().__init__(dt=dt, t_pre=t_pre)
        self.t_stim = check_positive("t_stim", t_stim)
        self.t_post = check_positive("t_post", t_post, strict=False)
        check_range("bg", bg)
        check_range("contrasts", contrasts)
        for w in waveforms:
            check_choice("waveforms", w, ("square", "sine"))
        for p in periods:
            check_positive("periods", p)
        check_finite("angles", angles)
        lo, hi = bg - bg * max(contrasts), bg + bg * max(contrasts)
        check_range("grating luminance bg (1 +- contrast)", [lo, hi])
        self.bg = float(bg)
        self.x, self.y = hexal_degrees(extent)
        self.n_hexals = len(self.x)
        rows = []
        for w, a, p in itertools.product(waveforms, angles, periods):
            if speeds is not None:
                motion = [(s / p, float(s)) for s in speeds]
            else:
                motion = [(float(f), f * p) for f in temporal_frequencies]
            for (f, s), c in itertools.product(motion, contrasts):
                rows.append((w, float(a), float(p), f, s, float(c)))
        self.params = pd.DataFrame(
            rows, columns=["waveform", "angle", "period", "temporal_frequency", "speed", "contrast"]
        )

    def phase(self, angle: float, period: float, frequency: float, t) -> np.ndarray:
        """Phase ``2 pi ((p . e) / period - f t)`` per time and hexal. **Shapes:**
        ``t (T,)`` -> ``(T, n_hexals)`` float64."""
        a = math.radians(angle)
        d = self.x * math.cos(a) + self.y * math.sin(a)
        return 2 * math.pi * (d[None, :] / period - frequency * np.asarray(t)[:, None])

    def _item(self, index: int) -> torch.Tensor:
        row = self.params.iloc[index]
        dt = self.dt
        n_stim = n_frames(self.t_stim, dt)
        n_pre = n_frames(self.t_stim + self.t_pre, dt) - n_stim
        n_total = max(n_frames(self.t_pre + self.t_stim + self.t_post, dt), n_pre + n_stim)
        s = np.sin(self.phase(row.angle, row.period, row.temporal_frequency,
                              np.arange(n_stim) * dt))
        wave = s if row.waveform == "sine" else np.where(s >= 0, 1.0, -1.0)
        out = np.full((n_total, self.n_hexals), self.bg)
        out[n_pre : n_pre + n_stim] = self.bg + self.bg * row.contrast * wave
        return torch.as_tensor(out, dtype=torch.float32)

    @property
    def n_frames(self) -> int:
        n_stim = n_frames(self.t_stim, self.dt)
        n_pre = n_frames(self.t_stim + self.t_pre, self.dt) - n_stim
        return max(n_frames(self.t_pre + self.t_stim + self.t_post, self.dt), n_pre + n_stim)
