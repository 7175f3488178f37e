"""``OpticFlowMovies``: procedural movies with exact optic flow (an offline Sintel stand-in).

Item ``i`` is the scene drawn from ``(seed, start + i)`` by
:func:`~flygnn.stimuli.scenes.sample_params` and rendered by
:func:`~flygnn.stimuli.scenes.render_movie` (the scene model and its conventions are
described in :mod:`flygnn.stimuli.scenes`); rendered items are cached in memory and on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from flygnn._arguments import is_int, is_range, require
from flygnn._deprecation import renamed_argument
from flygnn.checkpoint import atomic_torch_save, load_file
from flygnn.stimuli.augment import interpolate
from flygnn.stimuli.scenes import SOURCE_FPS, MotionPrior, MovieParams, render_movie, sample_params

__all__ = ["OpticFlowMovies", "check_movie_arguments"]

log = logging.getLogger(__name__)
_CACHE_VERSION = 1  # bump when rendering changes: old disk caches are then ignored


def _params_frame(params: MovieParams, seed: int, index: int) -> pd.DataFrame:
    rows = []
    for k, layer in enumerate(params.layers):
        row = asdict(layer)
        px, py = row.pop("position")
        vx, vy = row.pop("velocity")
        radius = row.pop("radius") or (np.nan, np.nan)
        kind = "background" if k == 0 else "object"
        rows.append(dict(seed=seed, sequence=index, layer=k, kind=kind,
                         x0=px, y0=py, vx=vx, vy=vy, radius_a=radius[0], radius_b=radius[1], **row))
    return pd.DataFrame(rows)


@dataclass
class _Config:
    n_frames: int  # n_source_frames (the field's name enters the cache key: kept)
    height: int
    width: int
    extent: int
    kernel_size: int
    seed: int
    n_objects: tuple[int, int]
    ego_motion: bool
    prior: MotionPrior = field(default_factory=MotionPrior)


def _read_cached(path: Path) -> dict[str, torch.Tensor] | None:
    """A cached item (loaded with ``weights_only=True``), or None with a warning when the file
    is truncated, foreign or not a dict of ``lum``/``flow`` tensors: it is then rendered again."""
    try:
        item = load_file(path, "optic-flow cache file")
    except ValueError as err:
        log.warning("%s; rendering the item again", err)
        return None
    if (not isinstance(item, dict) or not {"lum", "flow"} <= set(item)
            or not all(isinstance(v, torch.Tensor) for v in item.values())):
        log.warning("optic-flow cache file %r is not a dict of lum/flow tensors; rendering the "
                    "item again", str(path))
        return None
    return item


def check_movie_arguments(*, n_source_frames, height, width, seed, n_objects, prior,
                          kernel_size) -> None:
    """Check :class:`OpticFlowMovies`' keyword arguments that describe the movies (they are
    described there; the ``prior`` checks itself); called by ``OpticFlowMovies`` and by
    :class:`~flygnn.config.MoviesConfig`.

    Raises:
        ArgumentError: (a ``ValueError``) naming the first bad argument.
    """
    for name, value in (("n_source_frames", n_source_frames), ("height", height),
                        ("width", width), ("kernel_size", kernel_size)):
        require(is_int(value) and value >= 1, name, f"must be a positive integer, got {value!r}")
    require(is_int(seed) and seed >= 0, "seed", f"must be >= 0, got {seed!r}")
    require(is_range(n_objects) and all(is_int(n) for n in n_objects), "n_objects",
            f"must be an inclusive range (lo, hi), 0 <= lo <= hi, got {n_objects!r}")
    require(isinstance(prior, MotionPrior), "prior", f"must be a MotionPrior, got "
                                                     f"{type(prior).__name__}")


class OpticFlowMovies(Dataset):
    """Random naturalistic movies with exact optic flow on the photoreceptor lattice.

    Item ``i`` is generated from ``(seed, start + i)`` only, rendered at 24 fps
    (:func:`render_movie`), optionally transformed (e.g. :class:`~flygnn.stimuli.augment.
    Augment`, before resampling as in flyvis) and resampled to ``1/dt`` (nearest for
    luminance, linear for flow; :func:`~flygnn.stimuli.augment.interpolate`). Rendered
    sequences are cached in memory and, with ``root``, as ``root/processed/<key>/*.pt``.

    Args:
        n_sequences: number of items.
        n_source_frames: frames rendered per item (24 fps), before ``transform`` crops a clip.
        height, width: image size in pixels (at least ``BoxEye``'s 391 + 2 * 13 for no
            border effects; 436 x 417 is one Sintel split).
        extent, kernel_size: ``BoxEye`` lattice.
        dt: target time step in seconds; None keeps the source frames.
        seed: base seed.
        n_objects: inclusive range of the number of objects.
        ego_motion: move the camera (else the background is still).
        prior: motion and texture distribution.
        start: index offset (``split`` uses it for disjoint sets).
        transform: callable on the source-rate item dict, e.g. ``Augment``.
        root: optional on-disk cache folder.
        n_frames: deprecated spelling of ``n_source_frames``.

    **Shapes:** items ``{"lum": (T, n_hexals), "flow": (T, 2, n_hexals)}`` float32 with
    ``T = ceil(n_source_frames / (24 dt))`` without a crop; flow in image heights per source frame.
    """

    def __init__(self, n_sequences: int, n_source_frames: int = 19, height: int = 436,
                 width: int = 417, extent: int = 15, dt: float | None = 1 / 50, seed: int = 0,
                 n_objects: tuple[int, int] = (1, 4), ego_motion: bool = True,
                 prior: MotionPrior = MotionPrior(), kernel_size: int = 13, start: int = 0,
                 transform: Callable | None = None, root: str | os.PathLike | None = None,
                 cache: bool = True, *, n_frames: int | None = None) -> None:
        n_source_frames = renamed_argument("OpticFlowMovies", "n_frames", "n_source_frames",
                                           n_frames, n_source_frames, 19)
        check_movie_arguments(n_source_frames=n_source_frames, height=height, width=width,
                              seed=seed, n_objects=n_objects, prior=prior,
                              kernel_size=kernel_size)
        require(is_int(n_sequences) and n_sequences >= 1, "n_sequences",
                f"must be a positive integer, got {n_sequences!r}")
        if dt is not None and not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number or None, got {dt!r}")
        require(is_int(start) and start >= 0, "start", f"must be >= 0, got {start!r}")
        self.config = _Config(n_source_frames, height, width, extent, kernel_size, int(seed),
                              (int(n_objects[0]), int(n_objects[1])), bool(ego_motion), prior)
        self.n_sequences, self.start, self.dt = n_sequences, int(start), dt
        self.transform, self.cache = transform, cache
        self._memory: dict[int, dict[str, torch.Tensor]] = {}
        self.folder = None
        if root is not None:
            text = json.dumps([_CACHE_VERSION, asdict(self.config)], sort_keys=True)
            key = hashlib.sha256(text.encode()).hexdigest()
            self.folder = Path(root) / "processed" / f"opticflow_{key[:16]}"

    @classmethod
    def split(cls, n_train: int, n_val: int, **kwargs) -> tuple[OpticFlowMovies, OpticFlowMovies]:
        """Disjoint, fixed training and validation sets: items ``0..n_train-1`` and the next
        ``n_val`` of the same seed (validation without ``transform``)."""
        val_kwargs = {k: v for k, v in kwargs.items() if k != "transform"}
        return cls(n_train, **kwargs), cls(n_val, start=n_train, **val_kwargs)

    def __len__(self) -> int:
        return self.n_sequences

    def _check_index(self, index: int) -> int:
        if not -self.n_sequences <= index < self.n_sequences:
            raise IndexError(f"index {index} out of range for {self.n_sequences} sequences")
        return self.start + index % self.n_sequences

    def movie_params(self, index: int) -> MovieParams:
        """Parameters of item ``index`` (drawn from ``(seed, start + index)``)."""
        c = self.config
        rng = np.random.default_rng([c.seed, self._check_index(index)])
        return sample_params(rng, c.height, c.width, c.n_frames, c.n_objects, c.ego_motion, c.prior)

    def params(self, index: int) -> pd.DataFrame:
        """One row per layer: seed, sequence (``start + index``), layer, kind, motion, texture."""
        return _params_frame(self.movie_params(index), self.config.seed, self._check_index(index))

    def sequence(self, index: int) -> dict[str, torch.Tensor]:
        """The rendered source-rate item (cached), before ``transform`` and resampling."""
        key = self._check_index(index)
        if key in self._memory:
            return self._memory[key]
        path = self.folder / f"item_{key:06d}.pt" if self.folder is not None else None
        item = _read_cached(path) if path is not None and path.exists() else None
        if item is None:
            c = self.config
            item = render_movie(self.movie_params(index), c.extent, c.kernel_size)
            if path is not None:  # atomic: concurrent readers never see a partial file
                atomic_torch_save(item, path)
        if self.cache:
            self._memory[key] = item
        return item

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        source = self.sequence(index)
        item = dict(source)
        if self.transform is not None:
            item = self.transform(item)
        if self.dt is not None:
            item = interpolate(item, self.dt, SOURCE_FPS)
        # never hand out the cached tensors themselves
        return {k: v.clone() if v is source.get(k) else v for k, v in item.items()}

    def __repr__(self) -> str:
        c = self.config
        return (f"{type(self).__name__}(n_sequences={self.n_sequences}, "
                f"n_source_frames={c.n_frames}, size={c.height}x{c.width}, seed={c.seed}, "
                f"start={self.start}, dt={self.dt})")
