"""MPI-Sintel optic flow on the photoreceptor lattice (flyvis reference 6.6, 6.7, 9.4).

Reads a local copy of MPI-Sintel (``training/final/<scene>/frame_XXXX.png`` and
``training/flow/<scene>/frame_XXXX.flo``); nothing is downloaded. Per scene, luminance
frames ``2..N`` (PIL ``convert("L") / 255``) are paired with flow fields ``1..N-1`` (the
motion that led to each frame), flow is divided by the image height and its y component
negated (y up). Each frame is centre-cropped to ``int(0.7 W)`` columns and cut into
``vertical_splits`` overlapping windows, each rendered with ``BoxEye`` (``mean`` for
luminance, ``sum`` for flow).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from flygnn._deprecation import NOT_GIVEN, renamed_argument, warn_renamed
from flygnn.stimuli.augment import interpolate, temporal_crop
from flygnn.stimuli.render import BoxEye

__all__ = ["read_flo", "read_frame", "split_windows", "SintelFlow", "TRAIN_SCENES", "VAL_SCENES"]

log = logging.getLogger(__name__)

FLO_TAG = 202021.25
SOURCE_FPS = 24.0
TRAIN_SCENES = ("alley_1", "alley_2", "ambush_4", "ambush_5", "ambush_6", "ambush_7", "bamboo_2",
                "bandage_2", "cave_2", "market_5", "market_6", "shaman_2", "shaman_3",
                "sleeping_1", "sleeping_2", "temple_2", "temple_3")
VAL_SCENES = ("ambush_2", "bamboo_1", "bandage_1", "cave_4", "market_2", "mountain_1")
_VAL_EXCLUDED = (("cave_4", 1), ("cave_4", 2))  # flyvis drops these two on purpose


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file: float32 tag 202021.25, int32 ``w``, ``h``, then
    ``h * w * 2`` float32 (``u`` right, ``v`` down, in pixels).

    **Shapes:** returns float32 ``(h, w, 2)``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read flow file ({err})") from None
    if len(raw) < 12:
        raise ValueError(f"{path}: malformed .flo file (only {len(raw)} bytes)")
    tag = np.frombuffer(raw, "<f4", 1)[0]
    if tag != np.float32(FLO_TAG):
        raise ValueError(f"{path}: malformed .flo file (tag {tag!r}, expected {FLO_TAG})")
    w, h = (int(x) for x in np.frombuffer(raw, "<i4", 2, offset=4))
    if w < 1 or h < 1 or len(raw) != 12 + 8 * w * h:
        raise ValueError(f"{path}: malformed .flo file (w={w}, h={h}, {len(raw)} bytes; expected "
                         f"{12 + 8 * max(w, 0) * max(h, 0)})")
    return np.frombuffer(raw, "<f4", 2 * w * h, offset=12).reshape(h, w, 2).copy()


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """Luminance of an image: PIL ``convert("L")`` (ITU-R 601 luma) / 255, float32 ``(H, W)``."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"{path}: cannot read image ({err})") from None


def split_windows(width: int, n_splits: int, min_width: int) -> list[tuple[int, int]]:
    """Column windows ``[start, stop)`` of ``n_splits`` overlapping vertical strips.

    Window width ``w = max(min_width, int(width / n))``, overlap
    ``ceil((w n - width) / (n - 1))``, starts ``i (w - overlap)`` (flyvis's split). When a
    single window (``n = 1``) or the whole width is all there is, one window ``[0, width)``.
    E.g. ``(716, 3, 417)`` -> ``[0, 417), [149, 566), [298, 715)``.
    """
    if n_splits < 1 or width < 1:
        raise ValueError(f"need width >= 1 and n_splits >= 1, got width={width}, "
                         f"n_splits={n_splits}")
    size = max(min_width, int(width / n_splits))
    if n_splits == 1 or size >= width:
        return [(0, width)]
    overlap = math.ceil((size * n_splits - width) / (n_splits - 1))
    return [(i * (size - overlap), i * (size - overlap) + size) for i in range(n_splits)]


def _scene_files(root: Path, scene: str) -> tuple[list[Path], list[Path]]:
    frames = sorted((root / "final" / scene).glob("frame_*.png"))
    flows = sorted((root / "flow" / scene).glob("frame_*.flo"))
    if len(flows) < len(frames) - 1:
        raise ValueError(f"{root / 'flow' / scene}: {len(flows)} .flo files for {len(frames)} "
                         f"frames (expected {len(frames) - 1})")
    return frames, flows[:max(len(frames) - 1, 0)]


class SintelFlow(Dataset):
    """MPI-Sintel sequences as hex luminance movies with optic-flow targets.

    One sequence per (scene, vertical split), named ``sequence_{ii}_{scene}_split_{jj}``
    and sorted by scene then split (69 for the full training set). Items are the whole
    scene, cropped to a clip of ``n_clip_frames`` (first frames, or by ``transform``, e.g.
    ``Augment(n_clip_frames=19)``, which crops at random) and resampled from 24 fps to ``1/dt``.

    Args:
        root: Sintel folder holding ``training/final`` and ``training/flow``.
        n_clip_frames: source frames per item (scenes with fewer are skipped); None keeps all.
        dt: target time step in seconds (None: 24 fps source frames).
        vertical_splits, center_crop_fraction: as flyvis (3, 0.7).
        extent, kernel_size: ``BoxEye`` lattice.
        transform: callable on the source-rate item (before resampling).
        scenes: restrict to these scene names.
        n_frames: deprecated spelling of ``n_clip_frames``.

    **Shapes:** items ``{"lum": (T, n_hexals), "flow": (T, 2, n_hexals)}`` float32, flow in
    image heights per source frame (x right, y up).
    """

    def __init__(self, root: str | os.PathLike, n_clip_frames: int | None = 19,
                 dt: float | None = 1 / 50, vertical_splits: int = 3,
                 center_crop_fraction: float = 0.7, extent: int = 15, kernel_size: int = 13,
                 transform: Callable | None = None, scenes: list[str] | None = None, *,
                 n_frames: int | None = NOT_GIVEN) -> None:
        n_clip_frames = renamed_argument("SintelFlow", "n_frames", "n_clip_frames", n_frames,
                                         n_clip_frames, 19, missing=NOT_GIVEN)
        self.root = Path(root) / "training"
        for sub in ("final", "flow"):
            if not (self.root / sub).is_dir():
                raise ValueError(f"{self.root / sub}: Sintel folder not found (expected "
                                 "<root>/training/final/<scene>/*.png and "
                                 "<root>/training/flow/<scene>/*.flo)")
        if n_clip_frames is not None and n_clip_frames < 1:
            raise ValueError(f"n_clip_frames must be >= 1 or None, got {n_clip_frames!r}")
        if dt is not None and not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number or None, got {dt!r}")
        if not 0 < center_crop_fraction <= 1:
            raise ValueError("center_crop_fraction must be in (0, 1], got "
                             f"{center_crop_fraction!r}")
        if vertical_splits < 1:
            raise ValueError(f"vertical_splits must be >= 1, got {vertical_splits!r}")
        self.n_clip_frames, self.dt, self.transform = n_clip_frames, dt, transform
        self.vertical_splits, self.center_crop_fraction = vertical_splits, center_crop_fraction
        self.lum_eye = BoxEye(extent, kernel_size, mode="mean")
        self.flow_eye = BoxEye(extent, kernel_size, mode="sum")
        names = sorted(p.name for p in (self.root / "final").iterdir() if p.is_dir())
        if scenes is not None:
            unknown = sorted(set(scenes) - set(names))
            if unknown:
                raise ValueError(f"scenes {unknown} not found under {self.root / 'final'}")
            names = [s for s in names if s in scenes]
        self._sequences: list[dict[str, torch.Tensor]] = []
        rows = []
        for scene_index, scene in enumerate(names):
            frames, flows = _scene_files(self.root, scene)
            if len(frames) - 1 < (n_clip_frames or 1):
                log.info("skipping %s: %d frames < n_clip_frames + 1", scene, len(frames))
                continue
            for split, seq in enumerate(self._render_scene(frames, flows)):
                rows.append(dict(name=f"sequence_{scene_index:02d}_{scene}_split_{split:02d}",
                                 scene=scene, scene_index=scene_index, split=split,
                                 frames=seq["lum"].shape[0]))
                self._sequences.append(seq)
        if not rows:
            raise ValueError(f"{self.root}: no scene with at least {(n_clip_frames or 1) + 1} "
                             "frames")
        self.arg_df = pd.DataFrame(rows)

    def _render_scene(self, frames: list[Path], flows: list[Path]) -> list[dict[str, torch.Tensor]]:
        lum = np.stack([read_frame(p) for p in frames[1:]])  # frames 2..N
        H, W = lum.shape[1:]
        fields = []
        for p in flows:
            f = read_flo(p)
            if f.shape[:2] != (H, W):
                raise ValueError(f"{p}: flow is {f.shape[1]}x{f.shape[0]} (w x h), "
                                 f"frames are {W}x{H}")
            fields.append(f.transpose(2, 0, 1) * np.array([1, -1], np.float32)[:, None, None] / H)
        flow = np.stack(fields)  # (T, 2, H, W)
        width = int(self.center_crop_fraction * W)
        left = int(round((W - width) / 2.0))
        min_width = self.lum_eye.min_frame_size[1] + 2 * self.lum_eye.kernel_size
        out = []
        for a, b in split_windows(width, self.vertical_splits, min_width):
            cols = slice(left + a, left + b)
            x = torch.from_numpy(np.ascontiguousarray(lum[:, :, cols]))[None]
            f = torch.from_numpy(np.ascontiguousarray(flow[..., cols]))
            T = f.shape[0]
            flow_hex = self.flow_eye(f.reshape(1, 2 * T, H, b - a))[0].reshape(T, 2, -1)
            out.append({"lum": self.lum_eye(x)[0], "flow": flow_hex})
        return out

    @property
    def n_frames(self) -> int | None:
        """Deprecated spelling of :attr:`n_clip_frames`."""
        warn_renamed("SintelFlow", "n_frames", "n_clip_frames")
        return self.n_clip_frames

    @property
    def names(self) -> list[str]:
        return list(self.arg_df.name)

    def original_split(self) -> tuple[list[int], list[int]]:
        """flyvis's fixed split (9.4): indices of the 17 training scenes' sequences and of
        the 6 validation scenes' (without cave_4 splits 1 and 2)."""
        df = self.arg_df
        train = df.index[df.scene.isin(TRAIN_SCENES)].tolist()
        excluded = df[["scene", "split"]].apply(tuple, axis=1).isin(_VAL_EXCLUDED)
        val = df.index[df.scene.isin(VAL_SCENES) & ~excluded].tolist()
        return train, val

    def sequence(self, index: int) -> dict[str, torch.Tensor]:
        """The whole rendered sequence at 24 fps (no crop, transform or resampling)."""
        return self._sequences[index]

    def __len__(self) -> int:
        return len(self._sequences)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self._sequences[index])
        if self.transform is not None:
            item = self.transform(item)
        elif self.n_clip_frames is not None:
            item = temporal_crop(item, self.n_clip_frames, 0)
        if self.dt is not None:
            item = interpolate(item, self.dt, SOURCE_FPS)
        return {k: v.clone() for k, v in item.items()}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={self.root.parent}, sequences={len(self)}, "
                f"n_clip_frames={self.n_clip_frames}, dt={self.dt})")
