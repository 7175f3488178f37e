"""A user's own movie (array or video file) as a stimulus dataset."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from flygnn import hexgrid
from flygnn.stimuli.base import StimulusDataset, check_positive, check_range
from flygnn.stimuli.render import BoxEye
from flygnn.stimuli.temporal import resample

__all__ = ["CustomMovie", "read_video"]


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Read a video file as ``(T, H, W)`` luminance in ``[0, 1]`` with imageio.

    Colour frames become ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``; integer frames
    are divided by their dtype's maximum.

    **Shapes:** returns ``(T, H, W)`` float32.
    """
    try:
        import imageio.v3 as iio
    except ImportError as err:  # optional dependency
        raise ImportError(
            "reading video files needs imageio: pip install imageio (or flygnn[video])"
        ) from err
    if not os.path.isfile(path):
        raise ValueError(f"video file {os.fspath(path)!r} does not exist")
    try:
        frames = np.asarray(iio.imread(path))
    except Exception as err:
        raise ValueError(f"cannot read video file {os.fspath(path)!r}: {err}") from err
    scale = np.iinfo(frames.dtype).max if np.issubdtype(frames.dtype, np.integer) else 1.0
    frames = frames.astype(np.float32) / scale
    if frames.ndim == 4:
        frames = frames[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if frames.ndim != 3:
        raise ValueError(f"video file {os.fspath(path)!r} gave frames of shape {frames.shape}")
    return frames


class CustomMovie(StimulusDataset):
    """Any movie as hexal luminances: ``(B?, T, H, W)`` Cartesian frames go through
    ``BoxEye(*boxfilter)``; ``(B?, T, n_hexals)`` arrays are taken as already hexal; a path
    is read with ``read_video``. A 3-D array whose last axis has ``n_hexals`` entries is
    taken as ``(B, T, n_hexals)``. With ``source_dt`` (the movie's own frame interval) and
    ``dt``, each item is resampled to ``int(T source_dt / dt)`` frames (truncated linspace
    of source frames); otherwise frames are used as given.

    Luminances must be finite and inside ``dynamic_range``. ``params`` has one row per
    movie with columns ``movie, n_source_frames``.

    **Shapes:** ``dataset[i]`` is ``(n_frames, n_hexals)`` float32.
    """

    def __init__(
        self,
        frames,
        dt: float | None = None,
        source_dt: float | None = None,
        boxfilter: tuple[int, int] = (15, 13),
        dynamic_range: tuple[float, float] = (0.0, 1.0),
        t_pre: float = 0.0,
    ) -> None:
        if source_dt is not None:
            source_dt = check_positive("source_dt", source_dt)
        if dt is None:
            dt = source_dt if source_dt is not None else 1 / 200
        super().__init__(dt=dt, t_pre=t_pre)
        self.source_dt = source_dt
        if isinstance(frames, (str, os.PathLike)):
            frames = read_video(frames)
        x = torch.as_tensor(np.asarray(frames) if not torch.is_tensor(frames) else frames)
        if not x.is_floating_point():
            x = x.float()
        if torch.isnan(x).any():
            raise ValueError("frames contain NaN")
        check_range("frames", [x.min().item(), x.max().item()], *dynamic_range)
        extent, _ = boxfilter
        n_hex = hexgrid.num_hexals(extent)
        if x.dim() == 2 and x.shape[-1] == n_hex:
            hexal = x[None]  # (T, n_hexals)
        elif x.dim() == 3 and x.shape[-1] == n_hex:
            hexal = x  # (B, T, n_hexals); pass (1, T, H, W) for a Cartesian width of n_hexals
        elif x.dim() == 3:
            hexal = BoxEye(*boxfilter)(x[None])  # (T, H, W)
        elif x.dim() == 4:
            hexal = BoxEye(*boxfilter)(x)  # (B, T, H, W)
        else:
            raise ValueError(
                f"frames must have shape (T, H, W), (B, T, H, W), (T, {n_hex}) or "
                f"(B, T, {n_hex}); got {tuple(x.shape)}"
            )
        if hexal.shape[1] == 0:
            raise ValueError("frames hold no time steps (T = 0)")
        self.n_hexals = n_hex
        self.movies = hexal.to(torch.float32)
        self.params = pd.DataFrame(
            {"movie": range(len(self.movies)), "n_source_frames": hexal.shape[1]}
        )

    def _item(self, index: int) -> torch.Tensor:
        movie = self.movies[index]
        if self.source_dt is None:
            return movie
        return resample(movie, movie.shape[0] * self.source_dt, self.dt)

    @property
    def n_frames(self) -> int:
        return int(self[0].shape[0])
