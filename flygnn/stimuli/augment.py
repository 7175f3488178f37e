"""Augmentations of hex movies with optic-flow targets (flyvis reference 1.3, 6.4-6.7).

Items are dicts ``{"lum": (T, n_hexals), "flow": (T, 2, n_hexals)}``. Lattice symmetries
permute the hexals of both and turn the flow vectors with the matching 2x2 matrix (flip
first, then rotation); photometric changes touch luminance only; temporal resampling
uses nearest-exact frames for luminance and linear interpolation (align_corners) for flow.
All randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from flygnn import hexgrid
from flygnn._arguments import is_int, is_number, require
from flygnn._deprecation import renamed_argument, warn_renamed

__all__ = ["check_item", "symmetry", "contrast_brightness", "add_noise", "apply_gamma",
           "temporal_crop", "interpolate", "AugmentParams", "Augment", "check_augment_arguments"]


def check_item(item, name: str = "item") -> None:
    """Raise ``ValueError`` unless ``item`` holds finite ``lum (T, n)`` / ``flow (T, 2, n)``."""
    if not isinstance(item, dict) or "lum" not in item:
        raise ValueError(f"{name} must be a dict with a 'lum' tensor, got {type(item).__name__}")
    lum = item["lum"]
    if not torch.is_tensor(lum) or lum.dim() != 2:
        raise ValueError(f"{name}['lum'] must have shape (T, n_hexals), got "
                         f"{tuple(lum.shape) if torch.is_tensor(lum) else type(lum).__name__}")
    hexgrid.extent_of(lum.shape[1])
    if not torch.isfinite(lum).all():
        raise ValueError(f"{name}['lum'] contains NaN or inf")
    if "flow" in item:
        flow = item["flow"]
        if not torch.is_tensor(flow) or flow.dim() != 3 or flow.shape[1] != 2 \
                or flow.shape[0] != lum.shape[0] or flow.shape[2] != lum.shape[1]:
            got = tuple(flow.shape) if torch.is_tensor(flow) else type(flow).__name__
            raise ValueError(f"{name}['flow'] must have shape (T, 2, n_hexals) = "
                             f"({lum.shape[0]}, 2, {lum.shape[1]}), got {got}")
        if not torch.isfinite(flow).all():
            raise ValueError(f"{name}['flow'] contains NaN or inf")


@lru_cache(maxsize=64)
def _permutation(extent: int, n_rot: int, flip_axis: int) -> torch.Tensor:
    return hexgrid.permutation(extent, n_rot, flip_axis)


def symmetry(x: torch.Tensor, n_rot: int = 0, flip_axis: int = 0,
             vector: bool = False) -> torch.Tensor:
    """Mirror about lattice ``flip_axis`` (0 = none), then rotate by ``n_rot * 60`` degrees.

    The content at hexal ``p`` moves to ``R^n(F(p))``; with ``vector`` the axis ``-2``
    holds ``(x, y)`` vectors, which become ``R(n 60deg) M(flip_axis) (x, y)``.

    **Shapes:** ``(..., n_hexals)`` or, with ``vector``, ``(..., 2, n_hexals)``; same out.
    """
    if flip_axis not in (0, 1, 2, 3):
        raise ValueError(f"flip_axis must be one of 0, 1, 2, 3, got {flip_axis!r}")
    if vector and (x.dim() < 2 or x.shape[-2] != 2):
        raise ValueError(f"vector input must have shape (..., 2, n_hexals), got {tuple(x.shape)}")
    n_rot = int(n_rot) % 6
    if n_rot == 0 and flip_axis == 0:
        return x.clone()
    perm = _permutation(hexgrid.extent_of(x.shape[-1]), n_rot, flip_axis).to(x.device)
    out = x[..., perm]
    if vector:
        matrix = (hexgrid.rotation_matrix(n_rot) @ hexgrid.flip_matrix(flip_axis))
        out = torch.einsum("ij,...jn->...in", matrix.to(out), out)
    return out


def contrast_brightness(lum: torch.Tensor, contrast: float, brightness: float) -> torch.Tensor:
    """``max(c (x - 0.5) + 0.5 + c b, 0)`` for contrast factor ``c`` and brightness ``b``."""
    return (contrast * (lum - 0.5) + 0.5 + contrast * brightness).clamp_min(0.0)


def add_noise(lum: torch.Tensor, std: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``max(x + N(0, std^2), 0)`` independently per hexal and frame (drawn on the
    generator's device)."""
    device = generator.device if generator is not None else lum.device
    noise = torch.randn(lum.shape, generator=generator, dtype=lum.dtype, device=device)
    noise = noise.to(lum.device)
    return (lum + std * noise).clamp_min(0.0)


def apply_gamma(lum: torch.Tensor, gamma: float) -> torch.Tensor:
    """``x ** gamma``."""
    return lum.pow(gamma)


def temporal_crop(item: dict, n_frames: int, start: int = 0) -> dict:
    """Frames ``[start, start + n_frames)`` of every tensor in ``item`` (fewer if shorter)."""
    if n_frames < 1 or start < 0:
        raise ValueError(f"need n_frames >= 1 and start >= 0, got n_frames={n_frames}, "
                         f"start={start}")
    return {k: v[start:start + n_frames] for k, v in item.items()}


def _n_out(n: int, dt: float, source_fps: float) -> int:
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    if not source_fps > 0:
        raise ValueError(f"source_fps must be > 0, got {source_fps!r}")
    return math.ceil((1 / dt) / source_fps * n)


def interpolate(item: dict, dt: float, source_fps: float = 24.0, flow_mode: str = "linear") -> dict:
    """Resample a ``source_fps`` item to ``1/dt`` frames per second (flyvis ``Interpolate``).

    ``T' = ceil((1/dt) / source_fps * T)``. Luminance: nearest-exact, frame
    ``min(floor((k + 0.5) T / T'), T - 1)``; flow: linear with align_corners, source
    position ``k (T - 1) / (T' - 1)`` (or nearest-exact with ``flow_mode="nearest"``).
    Other keys are resampled nearest-exact.

    **Shapes:** ``(T, ...)`` -> ``(T', ...)`` per key.
    """
    if flow_mode not in ("linear", "nearest"):
        raise ValueError(f"flow_mode must be 'linear' or 'nearest', got {flow_mode!r}")
    out = {}
    for key, x in item.items():
        n = x.shape[0]
        n_out = _n_out(n, dt, source_fps)
        flat = x.reshape(n, -1).T[None]  # (1, C, T)
        if key == "flow" and flow_mode == "linear":
            y = F.interpolate(flat, size=n_out, mode="linear", align_corners=True)
        else:
            y = F.interpolate(flat, size=n_out, mode="nearest-exact")
        out[key] = y[0].T.reshape(n_out, *x.shape[1:]).contiguous()
    return out


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation: symmetry, photometric factors and crop start."""

    n_rot: int = 0
    flip_axis: int = 0
    contrast: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0
    crop_start: int = 0


def check_augment_arguments(*, n_clip_frames, p_rot, p_flip, flip_axes, contrast_std,
                            brightness_std, noise_std, gamma_std) -> None:
    """Check :class:`Augment`'s keyword arguments that have a range (all but ``dt`` and
    ``source_fps``, checked by resampling, ``seed`` and ``enabled``; they are described
    there); called by ``Augment`` and by
    :class:`~flygnn.config.AugmentConfig`.

    Raises:
        ArgumentError: (a ``ValueError``) naming the first bad argument.
    """
    require(n_clip_frames is None or (is_int(n_clip_frames) and n_clip_frames >= 1),
            "n_clip_frames", f"must be >= 1 or None, got {n_clip_frames!r}")
    for name, p in (("p_rot", p_rot), ("p_flip", p_flip)):
        require(is_number(p) and 0 <= p <= 1, name, f"must be in [0, 1], got {p!r}")
    require(not isinstance(flip_axes, str) and hasattr(flip_axes, "__iter__")
            and all(a in (0, 1, 2, 3) for a in flip_axes),
            "flip_axes", f"must be drawn from 0, 1, 2, 3, got {flip_axes!r}")
    for name, std in (("contrast_std", contrast_std), ("brightness_std", brightness_std),
                      ("noise_std", noise_std), ("gamma_std", gamma_std)):
        optional = name in ("contrast_std", "gamma_std")
        require((std is None and optional) or (is_number(std) and std >= 0), name,
                f"must be >= 0{' or None' if optional else ''}, got {std!r}")


class Augment:
    """flyvis's training augmentation of one item (6.7), defaults of its training config.

    Order: temporal crop -> pixel noise -> contrast/brightness -> gamma (luminance) ->
    flip -> rotation (luminance and flow) -> optional resampling to ``1/dt``.
    ``n_rot`` is uniform in 1..5 with probability ``p_rot``; the flip axis uniform among
    the non-zero ``flip_axes`` with probability ``p_flip``; ``c = exp(N(0, contrast_std))``,
    ``b = N(0, brightness_std)``, ``gamma = max(0, N(1, gamma_std))``; the crop start is
    uniform in ``[0, max(T - n_clip_frames, 1))``.

    Args:
        n_clip_frames: crop length in source frames (None: no crop).
        p_rot, p_flip, flip_axes, contrast_std, brightness_std, noise_std, gamma_std: as above.
        dt: resample to this step (None: keep frames; datasets resample themselves).
        seed: seed of the own generator used when a call passes none.
        enabled: False gives the evaluation transform (first ``n_clip_frames``, no changes).
        n_frames: deprecated spelling of ``n_clip_frames``.

    **Shapes:** item ``lum (T, n)``, ``flow (T, 2, n)`` -> same keys, ``T`` cropped/resampled.
    """

    def __init__(self, n_clip_frames: int | None = None, p_rot: float = 0.5, p_flip: float = 0.5,
                 flip_axes: tuple[int, ...] = (0, 1, 2, 3), contrast_std: float | None = 0.2,
                 brightness_std: float = 0.1, noise_std: float = 0.08,
                 gamma_std: float | None = None,
                 dt: float | None = None, source_fps: float = 24.0, seed: int = 0,
                 enabled: bool = True, *, n_frames: int | None = None) -> None:
        n_clip_frames = renamed_argument("Augment", "n_frames", "n_clip_frames", n_frames,
                                         n_clip_frames, None)
        check_augment_arguments(n_clip_frames=n_clip_frames, p_rot=p_rot, p_flip=p_flip,
                                flip_axes=flip_axes, contrast_std=contrast_std,
                                brightness_std=brightness_std, noise_std=noise_std,
                                gamma_std=gamma_std)
        if dt is not None:
            _n_out(1, dt, source_fps)
        self.n_clip_frames, self.p_rot, self.p_flip = n_clip_frames, p_rot, p_flip
        self.flip_axes = tuple(sorted({a for a in flip_axes if a}))
        self.contrast_std, self.brightness_std = contrast_std, brightness_std
        self.noise_std, self.gamma_std = noise_std, gamma_std
        self.dt, self.source_fps, self.enabled = dt, source_fps, enabled
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def n_frames(self) -> int | None:
        """Deprecated spelling of :attr:`n_clip_frames`."""
        warn_renamed("Augment", "n_frames", "n_clip_frames")
        return self.n_clip_frames

    def sample(self, n_source_frames: int,
               generator: torch.Generator | None = None) -> AugmentParams:
        """Draw the per-item parameters (noise is drawn in :meth:`apply`)."""
        g = generator if generator is not None else self.generator

        def uniform() -> float:
            return float(torch.rand((), generator=g))

        def normal(std: float) -> float:
            return float(torch.randn((), generator=g, dtype=torch.float64)) * std

        if not self.enabled:
            return AugmentParams()
        n_rot = int(torch.randint(1, 6, (), generator=g)) if uniform() < self.p_rot else 0
        flip = 0
        if self.flip_axes and uniform() < self.p_flip:
            flip = self.flip_axes[int(torch.randint(len(self.flip_axes), (), generator=g))]
        contrast = math.exp(normal(self.contrast_std)) if self.contrast_std is not None else 1.0
        brightness = normal(self.brightness_std) if self.contrast_std is not None else 0.0
        gamma = max(0.0, 1.0 + normal(self.gamma_std)) if self.gamma_std is not None else 1.0
        start = 0
        if self.n_clip_frames is not None:
            start = int(torch.randint(max(n_source_frames - self.n_clip_frames, 1), (),
                                      generator=g))
        return AugmentParams(n_rot, flip, contrast, brightness, gamma, start)

    def apply(self, item: dict, params: AugmentParams,
              generator: torch.Generator | None = None) -> dict:
        """Apply one parameter draw (pixel noise from ``generator``)."""
        check_item(item)
        g = generator if generator is not None else self.generator
        if self.n_clip_frames is not None:
            item = temporal_crop(item, self.n_clip_frames, params.crop_start)
        lum = item["lum"]
        if self.enabled and self.noise_std:
            lum = add_noise(lum, self.noise_std, g)
        if params.contrast != 1.0 or params.brightness != 0.0:
            lum = contrast_brightness(lum, params.contrast, params.brightness)
        if params.gamma != 1.0:
            lum = apply_gamma(lum, params.gamma)
        out = {"lum": symmetry(lum, params.n_rot, params.flip_axis)}
        if "flow" in item:
            out["flow"] = symmetry(item["flow"], params.n_rot, params.flip_axis, vector=True)
        if self.dt is not None:
            out = interpolate(out, self.dt, self.source_fps)
        return out

    def __call__(self, item: dict, generator: torch.Generator | None = None) -> dict:
        check_item(item)
        return self.apply(item, self.sample(item["lum"].shape[0], generator), generator)

    def __repr__(self) -> str:
        return (f"Augment(n_clip_frames={self.n_clip_frames}, p_rot={self.p_rot}, "
                f"p_flip={self.p_flip}, "
                f"flip_axes={self.flip_axes}, contrast_std={self.contrast_std}, "
                f"brightness_std={self.brightness_std}, noise_std={self.noise_std}, "
                f"gamma_std={self.gamma_std}, dt={self.dt}, enabled={self.enabled})")
