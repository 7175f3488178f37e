"""Moving bars and edges rendered through the hexagonal eye (``HexEye``).

A bar of ``width x height`` LEDs (2.25 degrees each) on a grey monitor is stepped across
``offsets`` LED positions, rotated to the motion direction and rendered once per position;
at access time the positions are stretched to the speed-dependent stimulus duration
(``resample``) and padded with grey before, grey or the last frame after, and NaN up to
the longest item.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import torch
from PIL import Image

from flygnn import hexgrid
from flygnn.stimuli.base import (
    StimulusDataset,
    check_choice,
    check_finite,
    check_positive,
    check_range,
)
from flygnn.stimuli.render import HexEye
from flygnn.stimuli.temporal import pad, resample_indices

__all__ = ["MovingBars", "MovingEdges", "bar_image", "rotate_image"]

LED_DEG = 2.25  # width of one LED of the Gruntman (2018) arena, degrees
RENDER_VERSION = 1  # bump when rendering changes: cached renderings are then ignored


def rotate_image(image: np.ndarray, angle: float) -> np.ndarray:
    """Rotate a ``[0, 1]`` image by ``angle`` degrees counter-clockwise (as displayed).

    As flyvis: edge-pad to the diagonal (``(int(sqrt(H^2 + W^2)) - H) // 2`` pixels per
    side), quantise ``uint8(255 x)`` (truncation), Pillow bilinear rotation without
    expansion, divide by 255, crop. Angles ``% 360 == 0`` return the image unchanged.

    **Shapes:** ``(H, W)`` -> ``(H, W)`` float64.
    """
    if angle % 360 == 0:
        return image
    H, W = image.shape
    p = (int(math.sqrt(H**2 + W**2)) - H) // 2
    # uint8 quantisation commutes with edge padding: quantise first (4x less data to pad)
    padded = np.pad((255 * image).astype(np.uint8), p, mode="edge")
    img = Image.fromarray(padded)
    rotated = np.asarray(img.rotate(angle, resample=Image.BILINEAR, expand=False)) / 255
    return rotated[p : p + H, p : p + W]


def bar_image(
    side: int,
    width_px: int,
    height_px: int,
    loc_h_px: int,
    loc_v_px: int,
    intensity: float,
    bg: float = 0.5,
) -> np.ndarray:
    """Monitor image with one upright bar, before rotation.

    Rows ``[int(lv - h/2), int(lv + h/2) + 1)`` and columns
    ``[max(int(lh - w/2), 0), int(lh - w/2) + w + 1)`` are set to ``intensity`` (flyvis's
    extents, one pixel wider and taller than ``w x h``), clipped to the monitor.

    **Shapes:** returns ``(side, side)`` float64.
    """
    image = np.full((side, side), bg, dtype=np.float64)
    r0 = max(int(loc_v_px - height_px / 2), 0)
    r1 = max(int(loc_v_px + height_px / 2) + 1, 0)
    c = int(loc_h_px - width_px / 2)
    c0, c1 = max(c, 0), max(c + width_px + 1, 0)
    image[r0:r1, c0:c1] = intensity
    return image


class MovingBars(StimulusDataset):
    """Bars moving in 12 directions at several speeds (flyvis ``MovingBar``).

    Positions ``o`` in ``arange(*offsets)`` (LED units) put the bar centre at the monitor
    column ``int(775 * (loc_h + o * 2.25 deg) / pi)`` of the 721-ommatidia eye's monitor
    (``ppo = 25``; on a smaller eye the same column relative to the monitor centre, so
    positions and speeds keep their size in degrees); the image is rotated by ``angle``
    so that motion runs in direction ``(cos angle, sin angle)`` (x right, y up). The bar
    crosses the positions in ``t_stim = n_pos * 2.25 / (5.8 * speed)`` seconds (speed in
    ommatidia/s). Item frames: ``resample`` to ``int(t_stim/dt)``, grey (``bg``) to
    ``int((t_pre + t_stim)/dt)``, ``post_pad_mode`` (``"value"`` grey or ``"continue"``)
    to ``int((t_pre + t_stim + t_post)/dt)``, then NaN up to the slowest item's length.

    Items: product of angle (outer), width, intensity, speed (inner); ``params``
    columns ``angle, width, intensity, t_stim, speed``. The ``(n_angle*n_width*n_int,
    n_pos, n_hexals)`` position array is rendered once (``positions``).

    Args:
        widths: bar widths in LEDs.
        offsets: ``(start, stop)`` of the LED positions.
        intensities: bar luminances in ``[0, 1]``.
        speeds: ommatidia per second.
        height: bar height in LEDs.
        dt, t_pre, t_post: seconds.
        bar_loc_horizontal, bar_loc_vertical: bar centre at position 0, radians (0..pi across
            the 721-ommatidia eye's monitor).
        angles: motion directions in degrees.
        bg: background luminance.
        post_pad_mode: ``"value"`` or ``"continue"``.
        shuffle_offsets, seed: shuffle the position order (``numpy.random.default_rng``).
        extent, ppo: the ``HexEye`` (lattice radius, pixels per ommatidium).
        n_ommatidia: deprecated spelling of the lattice size (hexal count).
        cache: keep the rendered positions on disk (:mod:`flygnn.diskcache`, keyed by the
            rendering parameters), so the next dataset with the same parameters loads them.

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)`` float32 (may hold NaN frames).
    """

    def __init__(
        self,
        widths=(1, 2, 4),
        offsets=(-10, 11),
        intensities=(0, 1),
        speeds=(2.4, 4.8, 9.7, 13, 19, 25),
        height: float = 9,
        dt: float = 1 / 200,
        bar_loc_horizontal: float = math.radians(90),
        bar_loc_vertical: float = math.radians(90),
        post_pad_mode: str = "value",
        t_pre: float = 1.0,
        t_post: float = 1.0,
        angles=tuple(range(0, 360, 30)),
        bg: float = 0.5,
        shuffle_offsets: bool = False,
        seed: int = 0,
        extent: int = 15,
        ppo: int = 25,
        cache: bool = True,
        *,
        n_ommatidia: int | None = None,
    ) -> None:
        super().__init__(dt=dt, t_pre=t_pre)
        self.cache = bool(cache)
        self.t_post = check_positive("t_post", t_post, strict=False)
        check_choice("post_pad_mode", post_pad_mode, ("value", "continue"))
        check_range("intensities", intensities)
        check_range("bg", bg)
        for name, vals in (("widths", widths), ("speeds", speeds), ("angles", angles)):
            if len(vals) == 0:
                raise ValueError(f"{name} must not be empty")
        for s in speeds:
            check_positive("speeds", s)
        for w in widths:
            check_positive("widths", w)
        check_positive("height", height)
        for name, vals in (("angles", angles), ("offsets", offsets),
                           ("bar_loc_horizontal", bar_loc_horizontal),
                           ("bar_loc_vertical", bar_loc_vertical)):
            check_finite(name, vals)
        self.widths, self.intensities = list(widths), list(intensities)
        self.speeds, self.angles = list(speeds), list(angles)
        self.height, self.bg, self.post_pad_mode = height, float(bg), post_pad_mode
        self.offsets = np.arange(*offsets)
        if len(self.offsets) == 0:
            raise ValueError(f"offsets {offsets} give no positions")
        if shuffle_offsets:
            self.offsets = np.random.default_rng(seed).permutation(self.offsets)
        self.bar_loc_horizontal, self.bar_loc_vertical = bar_loc_horizontal, bar_loc_vertical
        self.eye = HexEye(hexgrid.resolve_extent(extent, n_ommatidia, type(self).__name__), ppo)
        self.n_hexals = self.eye.n_hexals
        self._positions: torch.Tensor | None = None
        self._cache: dict[int, torch.Tensor] = {}
        rows = [
            (a, w, i, self.t_stim_of(s), s)
            for a, w, i, s in itertools.product(self.angles, self.widths, self.intensities,
                                                self.speeds)
        ]
        self.params = pd.DataFrame(rows, columns=["angle", "width", "intensity", "t_stim", "speed"])

    def t_stim_of(self, speed: float) -> float:
        """Seconds the bar needs to cross the positions: ``n_pos * 2.25 / (5.8 * speed)``."""
        return len(self.offsets) * LED_DEG / (self.eye.ommatidium_deg * speed)

    def _dt_changed(self) -> None:
        self._cache.clear()

    @property
    def positions(self) -> torch.Tensor:
        """Rendered positions, ``(n_angle * n_width * n_intensity, n_pos, n_hexals)`` float64."""
        if self._positions is None:
            if self.cache:
                from flygnn.diskcache import cached_array, digest

                shape = (len(self.angles) * len(self.widths) * len(self.intensities),
                         len(self.offsets), self.n_hexals)
                key = digest(self._render_token())
                self._positions = torch.from_numpy(cached_array(
                    "stimuli", key, lambda: self._render().numpy(), shape=shape))
            else:
                self._positions = self._render()
        return self._positions

    def _render_token(self) -> dict:
        """Everything the rendered positions depend on (their disk-cache key)."""
        return {"class": "MovingBars", "render_version": RENDER_VERSION,
                "angles": self.angles, "widths": self.widths, "intensities": self.intensities,
                "offsets": self.offsets, "height": self.height, "bg": self.bg,
                "bar_loc": [self.bar_loc_horizontal, self.bar_loc_vertical],
                "n_ommatidia": self.eye.n_ommatidia, "ppo": self.eye.ppo,
                "ommatidium_deg": self.eye.ommatidium_deg}

    def cache_token(self) -> dict:
        """Everything the items depend on: rendering, speeds and timing (a cache key part)."""
        return {**self._render_token(), "class": type(self).__name__, "speeds": self.speeds,
                "dt": self.dt, "t_pre": self.t_pre, "t_post": self.t_post,
                "post_pad_mode": self.post_pad_mode}

    def _render(self) -> torch.Tensor:
        eye, side = self.eye, self.eye.side
        # Locations are angles on the monitor of the 721-ommatidia eye (flyvis: 0..pi
        # across its 31 ppo pixels), shifted to this monitor's centre, so an LED step is
        # 2.25 deg on every eye (scaling by this monitor's side would shrink the steps).
        ref = eye.ppo * 31
        shift = ref // 2 - side // 2

        def column(angle: float) -> int:
            return int(ref * angle / math.pi) - shift

        lv = column(self.bar_loc_vertical)
        h_px = eye.deg_to_px(self.height * LED_DEG)
        out = []
        grid = itertools.product(self.angles, self.widths, self.intensities)
        for angle, width, intensity in grid:
            w_px = eye.deg_to_px(width * LED_DEG)
            frames = []
            for o in self.offsets:
                lh = column(self.bar_loc_horizontal + o * math.radians(LED_DEG))
                img = bar_image(side, w_px, h_px, lh, lv, intensity, self.bg)
                frames.append(rotate_image(img, angle))
            out.append(eye(np.stack(frames)))
        return torch.stack(out)

    def frame_indices(self, t_stim: float) -> torch.Tensor:
        """Per frame: a position index, ``-2`` for grey (``bg``) or ``-1`` for NaN.

        Equivalent to ``resample`` to ``t_stim``, ``pad`` grey at the start to
        ``t_pre + t_stim``, ``pad`` (``post_pad_mode``) at the end to ``+ t_post`` and NaN
        to the slowest item's length, expressed as one gather.

        **Shapes:** returns int64 ``(n_frames,)``.
        """
        dt = self.dt
        idx = resample_indices(len(self.offsets), t_stim, dt)
        idx = pad(idx, t_stim + self.t_pre, dt, value=-2, where="start")
        t_post = t_stim + self.t_pre + self.t_post
        if self.post_pad_mode == "continue" and len(idx):
            idx = pad(idx, t_post, dt, mode="continue")
        else:
            idx = pad(idx, t_post, dt, value=-2)
        t_max = self.t_stim_of(min(self.speeds))
        return pad(idx, t_max + self.t_pre + self.t_post, dt, value=-1)

    def _item(self, index: int) -> torch.Tensor:
        if index not in self._cache:
            row = self.params.iloc[index]
            frames = self.positions[index // len(self.speeds)].to(torch.float32)
            extra = torch.stack([torch.full_like(frames[0], self.bg),
                                 torch.full_like(frames[0], float("nan"))])
            table = torch.cat([frames, extra])  # rows: positions..., grey, nan
            idx = self.frame_indices(row.t_stim)
            idx = torch.where(idx == -2, len(frames), torch.where(idx == -1, len(frames) + 1, idx))
            self._cache[index] = table[idx]
        return self._cache[index]

    @property
    def n_frames(self) -> int:
        return int((self.t_stim_of(min(self.speeds)) + self.t_pre + self.t_post) / self.dt)


class MovingEdges(MovingBars):
    """Moving ON/OFF edges: a bar wider than the monitor (``widths=(80,)``) whose leading
    side sweeps across, starting at the monitor's left border (``bar_loc_horizontal = 0``),
    padded after the motion by repeating the last frame (flyvis ``MovingEdge``).
    See ``MovingBars`` for the item structure; ``height=80`` is the analysis setting.

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)`` float32 (may hold NaN frames).
    """

    def __init__(
        self,
        widths=(80,),
        offsets=(-10, 11),
        intensities=(0, 1),
        speeds=(2.4, 4.8, 9.7, 13, 19, 25),
        height: float = 9,
        dt: float = 1 / 200,
        bar_loc_horizontal: float = 0.0,
        post_pad_mode: str = "continue",
        t_pre: float = 1.0,
        t_post: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(
            widths=widths, offsets=offsets, intensities=intensities, speeds=speeds,
            height=height, dt=dt, bar_loc_horizontal=bar_loc_horizontal,
            post_pad_mode=post_pad_mode, t_pre=t_pre, t_post=t_post, **kwargs,
        )
