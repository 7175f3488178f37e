"""Eye models: render Cartesian images onto the hexagonal lattice of ommatidia.

``BoxEye`` averages a square box of pixels around each receptor centre (natural videos,
optic flow); ``HexEye`` averages the pixels inside a hexagon per ommatidium (analytic
bars, edges and gratings on a virtual monitor).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from flygnn import hexgrid

__all__ = ["BoxEye", "HexEye", "box_centers", "hex_masks", "hexagon_offsets", "resize"]

_MODES = ("mean", "sum", "median")


def box_centers(extent: int, kernel_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Receptor centres in pixels relative to the image centre, canonical hexal order.

    ``row = trunc(k (u + v/2))`` (truncation toward zero of the half-integers) and
    ``col = k v`` with spacing ``k = kernel_size``.

    **Shapes:** returns two int64 arrays ``(n_hexals,)``.
    """
    u, v = hexgrid.disk(extent)
    rows = np.trunc(kernel_size * (u + v / 2.0)).astype(np.int64)
    cols = (kernel_size * v).astype(np.int64)
    return rows, cols


class BoxEye:
    """Box-filter eye: each ommatidium sees the mean of a ``k x k`` pixel box.

    For receptor centre ``(r_i, c_i)`` (``box_centers`` shifted to ``(H//2, W//2)``) the
    output is ``y_i = (1/k^2) sum_{|dr|,|dc| <= k//2} x[r_i + dr, c_i + dc]`` with pixels
    outside the frame counted as 0 (zero padding); ``mode="sum"`` drops the ``1/k^2``,
    ``mode="median"`` takes the box median with reflect padding. Frames smaller than
    ``min_frame_size`` (the span of the centres plus one; 391 px for the defaults) are
    first resized to exactly that size (bilinear, antialiased, as torchvision's resize).
    Only the ``n_hexals`` box sums are evaluated, from a two-pass cumulative sum.

    Args:
        extent: lattice radius (15 -> 721 hexals).
        kernel_size: box side and receptor spacing in pixels.
        mode: ``"mean"`` (luminance), ``"sum"`` (optic flow) or ``"median"`` (depth).

    **Shapes:** ``(B, T, H, W)`` (torch or numpy) -> ``(B, T, n_hexals)`` float32 torch
    tensor on the input's device.
    """

    def __init__(self, extent: int = 15, kernel_size: int = 13, mode: str = "mean") -> None:
        if int(extent) != extent or extent < 0:
            raise ValueError(f"extent must be a non-negative integer, got {extent}")
        if int(kernel_size) != kernel_size or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive integer, got {kernel_size}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.extent = int(extent)
        self.kernel_size = int(kernel_size)
        self.mode = mode
        self.rows, self.cols = box_centers(self.extent, self.kernel_size)
        self.n_hexals = hexgrid.num_hexals(self.extent)
        size_r = int(self.rows.max() - self.rows.min() + 1)
        size_c = int(self.cols.max() - self.cols.min() + 1)
        self.min_frame_size = (size_r, size_c)

    def __repr__(self) -> str:
        return f"BoxEye(extent={self.extent}, kernel_size={self.kernel_size}, mode={self.mode!r})"

    def __call__(self, video) -> torch.Tensor:
        x = torch.as_tensor(video)
        if x.dim() != 4:
            raise ValueError(f"video must have shape (B, T, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            x = x.float()
        if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
            x = x.float()
        B, T, H, W = x.shape
        if H < self.min_frame_size[0] or W < self.min_frame_size[1]:
            x = resize(x.float(), self.min_frame_size)
            H, W = self.min_frame_size
        rows = torch.as_tensor(self.rows, device=x.device) + H // 2
        cols = torch.as_tensor(self.cols, device=x.device) + W // 2
        if self.mode == "median":
            out = _box_median(x, rows, cols, self.kernel_size)
        else:
            out = _box_sum(x, rows, cols, self.kernel_size)
            if self.mode == "mean":
                out = out / self.kernel_size**2
        return out.to(torch.float32)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of the last two axes (torchvision's tensor ``resize``).

    **Shapes:** ``(..., H, W)`` -> ``(..., size[0], size[1])``.
    """
    lead = x.shape[:-2]
    y = F.interpolate(
        x.reshape(-1, 1, *x.shape[-2:]),
        size=size,
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )
    return y.reshape(*lead, *size)


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.device.type == "mps" else torch.float64


def _box_sum(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, k: int) -> torch.Tensor:
    """Zero-padded box sums over rows ``[r - k//2, r - k//2 + k)`` (likewise columns).

    This is a ``k x k`` all-ones convolution with padding ``k // 2`` sampled at the
    centres, evaluated from separable cumulative sums in float64.
    """
    B, T, H, W = x.shape
    half = k // 2
    acc = x.to(_acc_dtype(x))
    # Row pass: only the distinct receptor rows are needed.
    urows, row_of = torch.unique(rows, return_inverse=True)
    zero_row = torch.zeros(B, T, 1, W, dtype=acc.dtype, device=x.device)
    csum = torch.cat([zero_row, acc.cumsum(dim=2)], dim=2)  # (B, T, H + 1, W)
    top = (urows - half).clamp(0, H)
    bottom = (urows - half + k).clamp(0, H)
    strips = csum[:, :, bottom] - csum[:, :, top]  # (B, T, n_rows, W)
    zero_col = torch.zeros(B, T, strips.shape[2], 1, dtype=acc.dtype, device=x.device)
    ccum = torch.cat([zero_col, strips.cumsum(dim=3)], dim=3)  # (B, T, n_rows, W + 1)
    left = (cols - half).clamp(0, W)
    right = (cols - half + k).clamp(0, W)
    return ccum[:, :, row_of, right] - ccum[:, :, row_of, left]


def _reflect(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect-pad indices into ``[0, n)`` (edge not repeated, as ``np.pad(mode="reflect")``)."""
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def _box_median(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, k: int) -> torch.Tensor:
    """Median of the reflect-padded ``k x k`` box at each receptor centre."""
    B, T, H, W = x.shape
    d = torch.arange(k, device=x.device) - k // 2
    r = _reflect(rows[:, None] + d[None, :], H)  # (n, k)
    c = _reflect(cols[:, None] + d[None, :], W)  # (n, k)
    flat = (r[:, :, None] * W + c[:, None, :]).reshape(len(rows), k * k)
    patches = x.reshape(B, T, H * W)[:, :, flat]  # (B, T, n, k*k)
    return patches.median(dim=-1).values


# --------------------------------------------------------------------------------------
# HexEye
# --------------------------------------------------------------------------------------


def hexagon_offsets(ppo: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Float16 vertex offsets of the HexEye hexagon, closed (vertex 6 ~ vertex 0).

    The circumradius ``R = (ppo / 2) 2 / sqrt(3)`` and the 60-degree step are taken in
    float16: ``R16 = f16(R)``, ``a16 = f16(pi / 3)``, and the unit step is
    ``(c, s) = (f16(cos a16), f16(sin a16))``. Vertex ``k`` is that step applied ``k`` times
    to ``(R16, 0)``, i.e. ``R16 |z|^k (cos k phi, sin k phi)`` with ``z = c + i s`` and
    ``phi = atan2(s, c)`` (about 1.04667 rad, 5e-4 short of 60 degrees), rounded to float16.
    The accumulated angle error tilts the hexagon by up to ~0.2 degrees at the closing
    vertex; together with the float16 rounding of ``centre + offset`` this reproduces
    flyvis's per-hexagon pixel counts exactly (513..545, mean 530.35, centre 541 for the
    defaults). Evaluated in float64 before the final rounding (float32 gives the same).

    **Shapes:** returns ``(dx, dy)``, two float16 tensors ``(7,)``.
    """
    f16 = torch.float16
    radius = float(torch.tensor(ppo / 2 * 2 / math.sqrt(3), dtype=f16))
    step = torch.tensor(math.pi / 3, dtype=f16).double()
    c = float(torch.cos(step).to(f16))
    s = float(torch.sin(step).to(f16))
    xs, ys = [radius], [0.0]
    for _ in range(6):
        xs.append(c * xs[-1] - s * ys[-1])
        ys.append(s * xs[-2] + c * ys[-1])
    return torch.tensor(xs).to(f16), torch.tensor(ys).to(f16)


@lru_cache(maxsize=8)
def hex_masks(n_ommatidia: int = 721, ppo: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse averaging matrix of the hexagonal ommatidia on a ``ppo * (2E + 1)`` monitor.

    Hexagon ``i`` is centred at ``x = ppo v + c``, ``y = ppo (u + v/2) + c`` with
    ``c = (ppo (2E + 1)) // 2``; its apothem is ``ppo / 2`` and its vertices are
    ``f16(centre + offset_k)`` with the float16 offsets of ``hexagon_offsets`` (angles
    ``~0, 60, ..., 360`` degrees). A pixel ``(x, y)`` belongs to it iff, for each edge from
    ``(x1, y1)`` to ``(x2, y2)`` with slope ``m = (y2 - y1) / (x2 - x1)``,
    ``sign(y1 + m (x - x1) - y)`` equals that sign at the centre, every operation rounded to
    float16 (which sets the per-hexagon pixel counts; 513..545, mean 530.35, 541 at the
    centre for the defaults, as flyvis). Entry ``(i, p)`` is ``1 / count_i``.

    **Shapes:** returns (``(n_ommatidia, P)`` sparse (coalesced COO) float64 matrix with
    ``P = side**2`` pixels in row-major order, ``(n_ommatidia,)`` int64 pixel counts).
    """
    extent = hexgrid.extent_of(n_ommatidia)
    side = ppo * (2 * extent + 1)
    u, v = hexgrid.disk(extent)
    half = side // 2
    cx = torch.as_tensor(ppo * v + half, dtype=torch.float64)
    cy = torch.as_tensor(ppo * (u + v / 2.0) + half, dtype=torch.float64)
    f16 = torch.float16
    dx, dy = hexagon_offsets(ppo)
    cx16, cy16 = cx.to(f16), cy.to(f16)
    vx = cx16[:, None] + dx[None, :]  # (n, 7), float16 sums
    vy = cy16[:, None] + dy[None, :]
    # Each hexagon fits in a (2 ppo)^2 window around its centre: test only those pixels.
    w = 2 * ppo
    offs = torch.arange(-w // 2, w // 2 + 1, dtype=torch.float64)
    px = (cx.round()[:, None] + offs[None, :]).clamp(0, side - 1)  # (n, m)
    py = (cy.round()[:, None] + offs[None, :]).clamp(0, side - 1)
    inside = torch.ones(n_ommatidia, len(offs), len(offs), dtype=torch.bool)
    px16 = px.to(f16)[:, None, :]  # x varies along the last axis
    py16 = py.to(f16)[:, :, None]  # y along the middle axis
    for e in range(6):
        x1, y1 = vx[:, e], vy[:, e]
        slope = (vy[:, e + 1] - y1) / (vx[:, e + 1] - x1)
        s_c = torch.sign(y1 + slope * (cx16 - x1) - cy16)
        line = y1[:, None, None] + slope[:, None, None] * (px16 - x1[:, None, None]) - py16
        inside &= torch.sign(line) == s_c[:, None, None]
    # Clamped windows may repeat border pixels: keep each (hexagon, pixel) pair once.
    hex_idx, iy, ix = inside.nonzero(as_tuple=True)
    pix = py[hex_idx, iy].long() * side + px[hex_idx, ix].long()
    pairs = torch.unique(hex_idx * side * side + pix)
    hex_idx, pix = pairs // (side * side), pairs % (side * side)
    counts = torch.bincount(hex_idx, minlength=n_ommatidia)
    values = 1.0 / counts[hex_idx].double()
    matrix = torch.sparse_coo_tensor(
        torch.stack([hex_idx, pix]), values, (n_ommatidia, side * side), is_coalesced=True,
        check_invariants=False,
    )
    return matrix, counts


class HexEye:
    """Hexagonal-pixel eye on a virtual monitor of ``ppo (2E + 1)`` pixels per side.

    Each ommatidium reports the mean of the monitor pixels inside its hexagon
    (``hex_masks``): ``y_i = (1 / n_i) sum_{p in hex_i} x_p``. Pixel rows grow downward along
    ``u + v/2`` and columns rightward along ``v`` (the orientation of ``BoxEye``). The
    averaging matrix is built once per ``(n_hexals, ppo)`` and cached in memory, so a
    batch of frames renders with one sparse-dense product.

    Args:
        extent: lattice radius (15 -> 721 hexals).
        ppo: monitor pixels per ommatidium (hexagon spacing).
        ommatidium_deg: visual angle of one ommatidium in degrees (unit conversions).
        n_ommatidia: deprecated spelling of the lattice size (hexal count).

    **Shapes:** ``(..., side, side)`` -> ``(..., n_hexals)`` float64 torch tensor.
    """

    def __init__(self, extent: int = 15, ppo: int = 25, ommatidium_deg: float = 5.8, *,
                 n_ommatidia: int | None = None) -> None:
        self.extent = hexgrid.resolve_extent(extent, n_ommatidia, "HexEye")
        if int(ppo) != ppo or ppo < 2:
            raise ValueError(f"ppo must be an integer >= 2, got {ppo}")
        self.n_hexals = hexgrid.num_hexals(self.extent)
        self.ppo = int(ppo)
        self.ommatidium_deg = float(ommatidium_deg)
        self.side = self.ppo * (2 * self.extent + 1)

    def __repr__(self) -> str:
        return f"HexEye(extent={self.extent}, ppo={self.ppo})"

    @property
    def n_ommatidia(self) -> int:
        """Deprecated name of :attr:`n_hexals`."""
        return self.n_hexals

    @property
    def matrix(self) -> torch.Tensor:
        """Cached sparse ``(n_hexals, side**2)`` averaging matrix (float64)."""
        return hex_masks(self.n_hexals, self.ppo)[0]

    @property
    def pixel_counts(self) -> torch.Tensor:
        """Monitor pixels per hexagon, ``(n_hexals,)`` int64."""
        return hex_masks(self.n_hexals, self.ppo)[1]

    def deg_to_px(self, degrees: float) -> int:
        """Size in pixels of ``degrees`` of visual angle, ``int(rad / rad(omm) * ppo)``."""
        return int(math.radians(degrees) / math.radians(self.ommatidium_deg) * self.ppo)

    def __call__(self, frames) -> torch.Tensor:
        x = torch.as_tensor(frames)
        if x.dim() < 2 or tuple(x.shape[-2:]) != (self.side, self.side):
            raise ValueError(
                f"frames must have shape (..., {self.side}, {self.side}), got {tuple(x.shape)}"
            )
        lead = x.shape[:-2]
        flat = x.reshape(-1, self.side * self.side).to(torch.float64).T
        out = torch.sparse.mm(self.matrix.to(x.device), flat).T
        return out.reshape(*lead, self.n_hexals)
