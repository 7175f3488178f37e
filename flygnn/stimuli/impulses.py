"""Dots and impulses written directly onto the hexals (flyvis ``Dots``, ``CentralImpulses``,
``SpatialImpulses``)."""

from __future__ import annotations

import itertools

import pandas as pd
import torch

from flygnn import hexgrid
from flygnn.stimuli.base import StimulusDataset, check_choice, check_positive, check_range
from flygnn.stimuli.temporal import n_frames

__all__ = ["Dots", "CentralImpulses", "SpatialImpulses"]


class Dots(StimulusDataset):
    """A dot (hex disk of ``dot_column_radius``) at each hexal within ``max_extent``.

    Intensities ``[2 bg - intensity, intensity]`` (OFF, ON). Frames: ``int(t_pre/dt)`` grey,
    then the stimulus period of ``int(t_stim/dt)`` frames (``"sustained"``: dot throughout;
    ``"impulse"``: dot for ``int(t_impulse/dt)`` frames, then grey), then grey up to
    ``int((t_pre + t_stim + t_post)/dt)``. Items: product of position (outer, canonical
    order) and intensity (inner); ``params`` columns ``u, v, offset, intensity,
    coordinate_index`` (+ ``t_impulse`` for impulses), ``coordinate_index`` being the
    hexal index of the position in the full lattice. The lattice radius is ``extent`` (15 ->
    721 hexals; ``n_ommatidia``, the hexal count, is a deprecated alias).

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)`` float32 (1400 x 721 by default).
    """

    def __init__(
        self,
        dot_column_radius: int = 0,
        max_extent: int = 15,
        bg_intensity: float = 0.5,
        t_stim: float = 5.0,
        dt: float = 1 / 200,
        t_impulse: float | None = None,
        extent: int = 15,
        t_pre: float = 2.0,
        t_post: float = 0.0,
        intensity: float = 1.0,
        mode: str = "sustained",
        impulse_durations=None,
        *,
        n_ommatidia: int | None = None,
    ) -> None:
        super().__init__(dt=dt, t_pre=t_pre)
        check_choice("mode", mode, ("sustained", "impulse"))
        check_range("bg_intensity", bg_intensity)
        check_range("intensity", intensity)
        check_range("2 * bg_intensity - intensity", 2 * bg_intensity - intensity)
        self.extent = hexgrid.resolve_extent(extent, n_ommatidia, type(self).__name__)
        if not 0 <= max_extent <= self.extent:
            raise ValueError(f"max_extent must be in [0, {self.extent}], got {max_extent}")
        if dot_column_radius < 0:
            raise ValueError(f"dot_column_radius must be >= 0, got {dot_column_radius}")
        self.n_hexals = hexgrid.num_hexals(self.extent)
        self.t_stim = check_positive("t_stim", t_stim)
        self.t_post = check_positive("t_post", t_post, strict=False)
        self.bg, self.mode, self.radius = float(bg_intensity), mode, int(dot_column_radius)
        self.t_impulse = check_positive("t_impulse", t_impulse) if t_impulse is not None else None
        self._u, self._v = hexgrid.disk(self.extent)
        pu, pv = hexgrid.disk(max_extent)
        lookup = {(a, b): i for i, (a, b) in enumerate(zip(self._u.tolist(), self._v.tolist()))}
        rows = [
            (int(pu[k]), int(pv[k]), k, inten, lookup[(int(pu[k]), int(pv[k]))])
            for k, inten in itertools.product(range(len(pu)), [2 * self.bg - intensity, intensity])
        ]
        cols = ["u", "v", "offset", "intensity", "coordinate_index"]
        if impulse_durations is not None:
            durations = [check_positive("impulse_durations", d) for d in impulse_durations]
            rows = [r + (d,) for r, d in itertools.product(rows, durations)]
            cols.append("t_impulse")
        self.params = pd.DataFrame(rows, columns=cols)

    def dot_frame(self, u: int, v: int, intensity: float) -> torch.Tensor:
        """Grey frame with the hexals within ``dot_column_radius`` of ``(u, v)`` set to
        ``intensity``. **Shapes:** ``(n_hexals,)``."""
        frame = torch.full((self.n_hexals,), self.bg, dtype=torch.float32)
        mask = hexgrid.hex_distance(self._u - u, self._v - v) <= self.radius
        frame[torch.as_tensor(mask)] = intensity
        return frame

    def _item(self, index: int) -> torch.Tensor:
        row = self.params.iloc[index]
        dt = self.dt
        n_pre = n_frames(self.t_stim + self.t_pre, dt) - n_frames(self.t_stim, dt)
        n_stim = n_frames(self.t_stim, dt)
        if self.mode == "sustained":
            n_on = n_stim
        else:
            t_imp = row.t_impulse if "t_impulse" in row else (self.t_impulse or dt)
            n_on = min(n_frames(t_imp, dt), n_stim)
        n_total = n_frames(self.t_stim + self.t_pre + self.t_post, dt)
        out = torch.full((max(n_total, n_pre + n_stim), self.n_hexals), self.bg)
        out[n_pre : n_pre + n_on] = self.dot_frame(int(row.u), int(row.v), row.intensity)
        return out

    @property
    def n_frames(self) -> int:
        n_pre = n_frames(self.t_stim + self.t_pre, self.dt) - n_frames(self.t_stim, self.dt)
        n_stim = n_frames(self.t_stim, self.dt)
        return max(n_frames(self.t_stim + self.t_pre + self.t_post, self.dt), n_pre + n_stim)


class CentralImpulses(Dots):
    """Impulses of several durations at the central hexal only (``max_extent =
    dot_column_radius``). Items: product of (OFF, ON) and ``impulse_durations`` (ms, inner).
    The analysis setting is ``t_stim=2, t_pre=1`` (600 frames at dt 1/200).

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)`` float32.
    """

    def __init__(self, impulse_durations=(5, 20, 50, 100, 200, 300), dot_column_radius: int = 0,
                 bg_intensity: float = 0.5, t_stim: float = 5.0, dt: float = 0.005,
                 extent: int = 15, t_pre: float = 2.0, t_post: float = 0.0,
                 intensity: float = 1.0, mode: str = "impulse", *,
                 n_ommatidia: int | None = None) -> None:
        super().__init__(dot_column_radius=dot_column_radius, max_extent=dot_column_radius,
                         bg_intensity=bg_intensity, t_stim=t_stim, dt=dt,
                         extent=extent, n_ommatidia=n_ommatidia, t_pre=t_pre, t_post=t_post,
                         intensity=intensity, mode=mode,
                         impulse_durations=[d / 1000 for d in impulse_durations])


class SpatialImpulses(Dots):
    """Impulses at every hexal within ``max_extent`` (default 4: 61 positions).
    Items: product of position (outer), (OFF, ON) and ``impulse_durations`` (ms, inner).

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)`` float32.
    """

    def __init__(self, impulse_durations=(5, 20), max_extent: int = 4,
                 dot_column_radius: int = 0, bg_intensity: float = 0.5, t_stim: float = 5.0,
                 dt: float = 0.005, extent: int = 15, t_pre: float = 2.0,
                 t_post: float = 0.0, intensity: float = 1.0, mode: str = "impulse", *,
                 n_ommatidia: int | None = None) -> None:
        super().__init__(dot_column_radius=dot_column_radius, max_extent=max_extent,
                         bg_intensity=bg_intensity, t_stim=t_stim, dt=dt,
                         extent=extent, n_ommatidia=n_ommatidia, t_pre=t_pre, t_post=t_post,
                         intensity=intensity, mode=mode,
                         impulse_durations=[d / 1000 for d in impulse_durations])
