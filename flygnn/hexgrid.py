"""The hexagonal lattice of the fly eye.

Columns (ommatidia, "hexals") carry integer axial coordinates ``(u, v)``; the third
cube coordinate is ``-(u + v)``. A lattice of *extent* ``E`` holds every ``(u, v)``
with ``|u| <= E``, ``|v| <= E`` and ``|u + v| <= E``: ``1 + 3E(E + 1)`` hexals.

The canonical order, used for photoreceptor inputs, stimuli and every cell type's
node block, is lexicographic in ``(u, v)``. Orientation: ``+u`` points down, ``+v``
points right and 30 degrees down; an image pixel at ``row = d (u + v/2)``,
``col = d v`` from the image centre lies on hexal ``(u, v)`` for spacing ``d``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

__all__ = [
    "num_hexals",
    "extent_of",
    "resolve_extent",
    "disk",
    "hex_distance",
    "center_index",
    "to_cartesian",
    "rotate",
    "flip",
    "permutation",
    "rotation_matrix",
    "flip_matrix",
]


def num_hexals(extent: int) -> int:
    """Number of hexals in a lattice of the given extent, ``1 + 3E(E + 1)``."""
    return 1 + 3 * extent * (extent + 1)


def extent_of(n_hexals: int) -> int:
    """Extent of a full lattice of ``n_hexals``; raises if no extent fits exactly."""
    extent = int(math.floor(math.sqrt(n_hexals / 3)))
    if num_hexals(extent) != n_hexals:
        raise ValueError(f"{n_hexals} hexals is not a full hexagonal lattice (1 + 3E(E+1))")
    return extent


def resolve_extent(extent: int, n_ommatidia: int | None, where: str, default: int = 15) -> int:
    """The lattice ``extent``, or the one of the deprecated ``n_ommatidia`` (a full lattice's
    hexal count, ``1 + 3E(E + 1)``) with a ``DeprecationWarning``.

    Raises:
        ValueError: ``n_ommatidia`` is no full lattice, or contradicts an explicit ``extent``.
    """
    if n_ommatidia is None:
        return int(extent)
    warnings.warn(f"{where}: n_ommatidia is deprecated and will be removed; pass "
                  f"extent={extent_of(n_ommatidia)} (the lattice radius) instead",
                  DeprecationWarning, stacklevel=3)
    from_count = extent_of(int(n_ommatidia))
    if extent != default and extent != from_count:
        raise ValueError(f"{where}: extent={extent} contradicts n_ommatidia={n_ommatidia}")
    return from_count


def disk(extent: int, stride: tuple[int, int] = (1, 1)) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the lattice of ``extent`` in canonical order.

    Args:
        extent: lattice radius ``E >= 0``.
        stride: keep only ``(u, v)`` with ``u % stride[0] == 0`` and ``v % stride[1] == 0``.

    Returns:
        ``(u, v)``, two int64 arrays of equal length, sorted by ``u`` then ``v``.
    """
    if extent < 0:
        raise ValueError(f"extent must be >= 0, got {extent}")
    us, vs = [], []
    for u in range(-extent, extent + 1):
        for v in range(max(-extent, -extent - u), min(extent, extent - u) + 1):
            if u % stride[0] == 0 and v % stride[1] == 0:
                us.append(u)
                vs.append(v)
    return np.asarray(us, dtype=np.int64), np.asarray(vs, dtype=np.int64)


def hex_distance(du, dv):
    """Hex distance ``(|du| + |dv| + |du + dv|) / 2`` (arrays or scalars)."""
    return (abs(du) + abs(dv) + abs(du + dv)) // 2


def center_index(extent: int) -> int:
    """Canonical index of ``(0, 0)`` in the lattice of ``extent`` (360 for 15)."""
    return (num_hexals(extent) - 1) // 2


def to_cartesian(u, v, mode: str = "default") -> tuple[np.ndarray, np.ndarray]:
    """Plotting coordinates ``x = 1.5 v``, ``y = -sqrt(3) (u + v / 2)`` (x right, y up)."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if mode != "default":
        raise ValueError(f"unknown hex->cartesian mode {mode!r}; expected 'default'")
    return 1.5 * v, -math.sqrt(3.0) * (u + v / 2.0)


def rotate(u, v, n: int = 1):
    """Rotate coordinates by ``n * 60`` degrees counter-clockwise: ``(u, v) -> (-v, u + v)``."""
    u, v = np.asarray(u), np.asarray(v)
    for _ in range(n % 6):
        u, v = -v, u + v
    return u, v


_FLIPS = {
    0: lambda u, v: (u, v),
    1: lambda u, v: (u + v, -v),
    2: lambda u, v: (-u, u + v),
    3: lambda u, v: (-v, -u),
}


def flip(u, v, axis: int):
    """Mirror coordinates about lattice axis 0 (identity), 1, 2 or 3."""
    if axis not in _FLIPS:
        raise ValueError(f"flip axis must be one of 0, 1, 2, 3, got {axis}")
    return _FLIPS[axis](np.asarray(u), np.asarray(v))


def permutation(extent: int, n_rot: int = 0, flip_axis: int = 0) -> torch.Tensor:
    """Index ``perm`` with ``out[..., j] = x[..., perm[j]]`` for a flip, then a rotation.

    The content at hexal ``p`` moves to hexal ``R^n(F(p))``.
    """
    u, v = disk(extent)
    fu, fv = flip(u, v, flip_axis)
    ru, rv = rotate(fu, fv, n_rot)
    perm = np.lexsort((rv, ru))
    return torch.as_tensor(perm, dtype=torch.long)


def rotation_matrix(n_rot: int) -> torch.Tensor:
    """2x2 float32 matrix rotating (x right, y up) vectors by ``n_rot * 60`` degrees."""
    phi = math.radians(60 * n_rot)
    c, s = math.cos(phi), math.sin(phi)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float32)


def flip_matrix(axis: int) -> torch.Tensor:
    """2x2 float32 mirror for lattice flip ``axis`` (angle 90, 150, 210 degrees)."""
    if axis == 0:
        return torch.eye(2)
    if axis not in (1, 2, 3):
        raise ValueError(f"flip axis must be one of 0, 1, 2, 3, got {axis}")
    a = math.radians({1: 90, 2: 150, 3: 210}[axis])
    c, s = math.cos(2 * a), math.sin(2 * a)
    return torch.tensor([[c, s], [s, -c]], dtype=torch.float32)
