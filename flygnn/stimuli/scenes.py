"""Procedural naturalistic scenes with exact optic flow, rendered onto the hex lattice.

An offline stand-in for MPI-Sintel: every movie is a stack of layers -- a background and
``n`` objects drawn in painter's order (later objects occlude earlier ones) -- each with a
1/f-spectrum ("pink noise") texture that moves rigidly under an affine map. In screen
coordinates ``s = (x, y)`` (pixels from the view centre ``(H//2, W//2)``, x right, y up)
a texture point ``q`` of layer ``l`` is seen at frame ``t`` (source frames) at

    ``s = A_l(t) q + b_l(t)``.

The camera (ego-motion) maps world points ``w`` to ``s = E(t) w + v_e t`` with
``E(t) = exp(e t) R(w t)`` (translation, rotation about the view centre, expansion); the
background is ``w = q`` and an object is ``w = O(t) q + p_o + v_o t`` with
``O(t) = exp(e_o t) R(theta_o + w_o t)``, so ``A = E O`` and ``b = E (p_o + v_o t) + v_e t``.
Luminance is the bilinear, periodic texture sample at ``q = A^{-1}(s - b)``, so the flow
from frame ``k`` to ``k + 1`` at ``s`` is exactly
``A_{k+1} A_k^{-1} (s - b_k) + b_{k+1} - s`` for the layer visible at ``s`` in frame ``k``.

Conventions follow Sintel (flyvis reference 6.6): ``n_frames + 1`` source frames are
rendered at 24 fps; luminance frames ``1..n`` are paired with the forward flow of frames
``0..n-1`` (the motion that led to each frame), flow is divided by the image height, y up.
Both go through ``BoxEye`` (``mean`` for luminance, ``sum`` for flow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from flygnn._arguments import is_int, is_number, is_range, require
from flygnn.stimuli.render import BoxEye

__all__ = ["Layer", "MovieParams", "MotionPrior", "sample_params", "pink_noise", "render_points",
           "render_movie", "SOURCE_FPS"]

SOURCE_FPS = 24.0


@dataclass(frozen=True)
class Layer:
    """One textured layer; the background when ``radius`` is None, else an object.

    Lengths in pixels, times in source frames, angles in radians (counter-clockwise).
    For the background the motion fields are the camera's (``velocity``=``v_e``,
    ``rotation``=``w``, ``expansion``=``e``); for an object they are its own motion in
    the world (``position``=``p_o``, ``angle``=``theta_o``) before the camera's.
    """

    texture_seed: int
    alpha: float = 1.0  # amplitude spectrum ~ 1 / f**alpha
    mean: float = 0.5
    contrast: float = 0.2  # std of the texture before clipping to [0, 1]
    position: tuple[float, float] = (0.0, 0.0)
    velocity: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    rotation: float = 0.0
    expansion: float = 0.0
    radius: tuple[float, float] | None = None  # object semi-axes (a, b)
    roundness: float = 2.0  # superellipse exponent: |qx/a|^n + |qy/b|^n <= 1
    texture_size: int = 256


@dataclass(frozen=True)
class MovieParams:
    """A movie: the background layer first, then the objects in drawing order."""

    layers: tuple[Layer, ...]
    height: int = 436
    width: int = 417
    n_frames: int = 19


@dataclass(frozen=True)
class MotionPrior:
    """Distribution of the random movies (per source frame at 24 fps, pixels).

    Speeds are uniform in ``[0, max]`` with a uniform direction; rotation and expansion
    rates are normal, clipped to 2 standard deviations.
    """

    speed: float = 4.0
    rotation_std: float = 0.01
    expansion_std: float = 0.008
    object_speed: float = 6.0
    object_rotation_std: float = 0.02
    object_expansion_std: float = 0.008
    object_radius: tuple[float, float] = (30.0, 110.0)
    object_spread: float = 130.0  # initial object centres uniform in a square of this half-width
    mean: tuple[float, float] = (0.2, 0.7)
    contrast: tuple[float, float] = (0.1, 0.3)
    alpha: tuple[float, float] = (0.8, 1.3)
    background_texture: int | None = None  # None: power of 2 >= 2 max(H, W) (1024 for Sintel)
    object_texture: int = 256

    def __post_init__(self) -> None:
        """Check the fields (also for :class:`~flygnn.config.MoviesConfig`'s ``prior``).

        Raises:
            ArgumentError: (a ``ValueError``) naming the first bad field.
        """
        for name in ("speed", "rotation_std", "expansion_std", "object_speed",
                     "object_rotation_std", "object_expansion_std", "object_spread"):
            value = getattr(self, name)
            require(is_number(value) and value >= 0, name, f"must be a finite number >= 0, "
                                                           f"got {value!r}")
        for name, low, rule in (("object_radius", 0.0, "0 < lo <= hi"),
                                ("mean", 0.0, "0 <= lo <= hi"), ("contrast", 0.0, "0 <= lo <= hi"),
                                ("alpha", -math.inf, "lo <= hi")):
            value = getattr(self, name)
            ok = is_range(value, low) and (name != "object_radius" or value[0] > 0)
            shown = list(value) if isinstance(value, (tuple, list)) else value
            require(ok, name, f"must be [lo, hi] with {rule}, got {shown!r}")
        require(self.background_texture is None or (is_int(self.background_texture)
                                                    and self.background_texture >= 1),
                "background_texture", f"must be a positive integer or None, got "
                                      f"{self.background_texture!r}")
        require(is_int(self.object_texture) and self.object_texture >= 1, "object_texture",
                f"must be a positive integer, got {self.object_texture!r}")


def _normal(rng: np.random.Generator, std: float) -> float:
    return float(np.clip(rng.normal(0.0, std), -2 * std, 2 * std)) if std > 0 else 0.0


def _velocity(rng: np.random.Generator, vmax: float) -> tuple[float, float]:
    speed, phi = rng.uniform(0, vmax), rng.uniform(0, 2 * math.pi)
    return (float(speed * math.cos(phi)), float(speed * math.sin(phi)))


def sample_params(rng: np.random.Generator, height: int = 436, width: int = 417,
                  n_frames: int = 19, n_objects: tuple[int, int] = (1, 4), ego_motion: bool = True,
                  prior: MotionPrior = MotionPrior()) -> MovieParams:
    """Draw one movie's parameters (``n_objects`` is an inclusive range)."""
    def texture(size: int) -> dict:
        return dict(texture_seed=int(rng.integers(2**31)), alpha=float(rng.uniform(*prior.alpha)),
                    mean=float(rng.uniform(*prior.mean)),
                    contrast=float(rng.uniform(*prior.contrast)), texture_size=size)

    size = prior.background_texture or max(256, 1 << (2 * max(height, width) - 1).bit_length())
    background = Layer(**texture(size))
    if ego_motion:
        background = replace(background, velocity=_velocity(rng, prior.speed),
                             rotation=_normal(rng, prior.rotation_std),
                             expansion=_normal(rng, prior.expansion_std))
    layers = [background]
    for _ in range(int(rng.integers(n_objects[0], n_objects[1] + 1))):
        s = prior.object_spread
        layers.append(Layer(
            **texture(prior.object_texture),
            position=(float(rng.uniform(-s, s)), float(rng.uniform(-s, s))),
            velocity=_velocity(rng, prior.object_speed),
            angle=float(rng.uniform(0, 2 * math.pi)),
            rotation=_normal(rng, prior.object_rotation_std),
            expansion=_normal(rng, prior.object_expansion_std),
            radius=(float(rng.uniform(*prior.object_radius)),
                    float(rng.uniform(*prior.object_radius))),
            roundness=float(rng.uniform(1.2, 4.0)),
        ))
    return MovieParams(tuple(layers), height, width, n_frames)


def pink_noise(size: int, alpha: float, seed: int) -> torch.Tensor:
    """Periodic ``size x size`` texture, amplitude spectrum ``~ 1/f**alpha``, mean 0, std 1.

    **Shapes:** returns float32 ``(size, size)``.
    """
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft2(rng.standard_normal((size, size)))
    f = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    f[0, 0] = np.inf
    img = np.fft.irfft2(spectrum / f**alpha, s=(size, size))
    return torch.from_numpy((img - img.mean()) / img.std()).float()


def _texture(layer: Layer) -> torch.Tensor:
    """The layer's texture ``clip(mean + contrast z, 0, 1)``, with its first row and column
    repeated at the end (periodic bilinear sampling). **Shapes:** ``(S + 1, S + 1)``."""
    tex = (layer.mean + layer.contrast * pink_noise(layer.texture_size, layer.alpha,
                                                     layer.texture_seed)).clamp(0.0, 1.0)
    tex = torch.cat([tex, tex[:1]], dim=0)
    return torch.cat([tex, tex[:, :1]], dim=1)


def _rot(phi: float) -> np.ndarray:
    return np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])


def _affine(layer: Layer, ego: Layer, t: float, is_object: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` (float64) of a layer at time ``t``: screen ``s = A q + b``."""
    E = math.exp(ego.expansion * t) * _rot(ego.rotation * t)
    d = np.asarray(ego.velocity) * t
    if not is_object:
        return E, d
    obj = math.exp(layer.expansion * t) * _rot(layer.angle + layer.rotation * t)
    p = np.asarray(layer.position) + np.asarray(layer.velocity) * t
    return E @ obj, E @ p + d


def _sample(tex: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of a periodic texture (from :func:`_texture`) at points ``q``.

    Texture point ``q`` sits at pixel ``(q + S/2) mod S`` (column from x, row from y).
    **Shapes:** ``tex (S + 1, S + 1)``, ``q (P, 2)`` -> ``(P,)``.
    """
    S = tex.shape[0] - 1
    grid = torch.remainder(q + S / 2, S) * (2.0 / S) - 1.0
    out = F.grid_sample(tex[None, None], grid[None, None], mode="bilinear", align_corners=True)
    return out.reshape(-1)


def _affine_apply(coef: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """``out_j = coef[3j] x + coef[3j + 1] y + coef[3j + 2]`` per output ``j`` (broadcast)."""
    return [torch.addcmul(torch.addcmul(coef[3 * j + 2], x, coef[3 * j]), y, coef[3 * j + 1])
            for j in range(coef.shape[0] // 3)]


def render_points(params: MovieParams, points: torch.Tensor, frames,
                  textures: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Luminance, visible layer and forward flow of a movie at arbitrary screen points.

    Args:
        params: the movie.
        points: screen coordinates ``(x, y)`` in pixels from the view centre, y up.
        frames: source frame times ``t`` (any floats).
        textures: the layers' textures (computed from ``params`` when None).

    Returns:
        ``lum`` in [0, 1], ``layer`` (index of the visible layer, 0 = background) and
        ``flow``: the displacement in pixels (x right, y up) of the visible surface point
        from ``t`` to ``t + 1``.

    **Shapes:** ``points (P, 2)`` -> ``lum (T, P)``, ``layer (T, P)`` int64, ``flow (T, P, 2)``.
    """
    if textures is None:
        textures = [_texture(layer) for layer in params.layers]
    ego = params.layers[0]
    frames = [float(t) for t in frames]
    T, P = len(frames), points.shape[0]
    X, Y = points[:, 0].float(), points[:, 1].float()
    layer_id = torch.zeros(T, P, dtype=torch.long)
    for idx, (layer, tex) in enumerate(zip(params.layers, textures)):
        # per frame, q = A^-1 (s - b) and flow = (A1 A^-1 - I) s + b1 - A1 A^-1 b, i.e.
        # (q, flow) = x maps[0] + y maps[1] + maps[2]
        maps, centres, half = np.zeros((T, 3, 4)), np.zeros((T, 2)), np.zeros((T, 2))
        for k, t in enumerate(frames):
            A, b = _affine(layer, ego, t, idx > 0)
            A1, b1 = _affine(layer, ego, t + 1.0, idx > 0)
            inv = np.linalg.inv(A)
            maps[k, :2, :2], maps[k, 2, :2] = inv.T, -inv @ b
            maps[k, :2, 2:], maps[k, 2, 2:] = (A1 @ inv - np.eye(2)).T, b1 - A1 @ inv @ b
            if idx > 0:  # screen bounding box of the shape's [-a, a] x [-r, r] rectangle
                centres[k], half[k] = b, np.abs(A) @ np.asarray(layer.radius) + 1.0
        coef = torch.from_numpy(maps.transpose(2, 1, 0).reshape(12, T)).float()  # (out, in, T)
        if idx == 0:  # the background covers every point
            qx, qy, fx, fy = _affine_apply(coef[..., None], X[None], Y[None])  # (T, P) each
            lum = _sample(tex, torch.stack([qx, qy], dim=-1).reshape(-1, 2)).reshape(T, P)
            flow = torch.stack([fx, fy], dim=-1)
            continue
        c, h = torch.from_numpy(centres).float(), torch.from_numpy(half).float()
        near = ((X[None] - c[:, :1]).abs() <= h[:, :1]) & ((Y[None] - c[:, 1:]).abs() <= h[:, 1:])
        tk, pk = near.nonzero(as_tuple=True)  # sorted by frame
        x, y = X[pk], Y[pk]
        qx, qy = _affine_apply(coef[:6].repeat_interleave(near.sum(dim=1), dim=1), x, y)
        (a, r), n = layer.radius, layer.roundness
        inside = ((qx / a).abs() ** n + (qy / r).abs() ** n <= 1.0).nonzero().flatten()
        tk, pk, x, y = tk[inside], pk[inside], x[inside], y[inside]
        lum[tk, pk] = _sample(tex, torch.stack([qx[inside], qy[inside]], dim=-1))
        layer_id[tk, pk] = idx
        flow[tk, pk] = torch.stack(_affine_apply(coef[6:, tk], x, y), dim=-1)
    return {"lum": lum, "layer": layer_id, "flow": flow}


def _pixel_grid(height: int, width: int) -> torch.Tensor:
    """Screen coordinates of all pixels, row-major: ``x = col - W//2``, ``y = H//2 - row``."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([cols - width // 2, height // 2 - rows], dim=-1).reshape(-1, 2).double()


def render_movie(params: MovieParams, extent: int = 15, kernel_size: int = 13,
                 cartesian: bool = False) -> dict[str, torch.Tensor]:
    """Render a movie onto the hex lattice (or as images when ``cartesian``).

    Luminance frame ``k`` (k = 1..n) is paired with the flow from frame ``k-1`` to ``k``,
    in image heights per source frame (x right, y up); on the lattice luminance is the
    BoxEye mean and each flow component the BoxEye sum.

    **Shapes:** returns ``lum (n, n_hexals)``, ``flow (n, 2, n_hexals)`` float32; with
    ``cartesian`` ``lum (n, H, W)``, ``flow (n, 2, H, W)``, ``layer (n, H, W)`` (visible
    layer of the flow's frame).
    """
    H, W, n = params.height, params.width, params.n_frames
    out = render_points(params, _pixel_grid(H, W), range(n + 1))
    lum = out["lum"][1:].reshape(n, H, W)
    flow = (out["flow"][:-1] / H).reshape(n, H, W, 2).permute(0, 3, 1, 2).contiguous()
    if cartesian:
        return {"lum": lum, "flow": flow, "layer": out["layer"][:-1].reshape(n, H, W)}
    lum_hex = BoxEye(extent, kernel_size, mode="mean")(lum[None])[0]
    flow_hex = BoxEye(extent, kernel_size, mode="sum")(flow.reshape(1, 2 * n, H, W))[0]
    return {"lum": lum_hex, "flow": flow_hex.reshape(n, 2, -1)}
