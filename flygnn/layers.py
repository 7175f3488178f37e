"""Building blocks of the flow decoder: hexagonal convolutions on axial maps, dropout whose
masks come from an explicit generator (single values, whole channels, or groups of
channels), and a running root-mean-square normalisation per channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flygnn import hexgrid

__all__ = ["hex_mask", "HexConv2d", "Dropout", "GroupDropout", "RunningRMS"]


def hex_mask(kernel_size: int) -> torch.Tensor:
    """Kernel mask keeping ``[du + r, dv + r]`` iff ``(du, dv)`` is within hex distance ``r``.

    ``r = kernel_size // 2``; for 5x5 it drops the corners ``(-2,-2), (-2,-1), (-1,-2),
    (2,2), (2,1), (1,2)`` and keeps 19 entries.

    **Shapes:** returns float32 ``(kernel_size, kernel_size)``.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    r = kernel_size // 2
    d = torch.arange(-r, r + 1)
    du, dv = d[:, None], d[None, :]
    return (hexgrid.hex_distance(du, dv) <= r).float()


class HexConv2d(nn.Conv2d):
    """A same-padded 2-D convolution over axial maps with a hexagonal kernel.

    ``y = conv2d(x, W * M) + b`` where ``M`` is :func:`hex_mask`; the weight is masked in
    place at construction and the mask is applied again in every forward, so masked
    entries never contribute and receive zero gradient.

    **Shapes:** ``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 const_weight: float | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.register_buffer("mask", hex_mask(kernel_size), persistent=False)
        with torch.no_grad():
            if const_weight is not None:
                self.weight.fill_(const_weight)
                self.bias.fill_(const_weight)
            self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class Dropout(nn.Module):
    """Inverted dropout whose mask can come from an explicit ``torch.Generator``.

    In training mode ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)``; identity in
    eval mode. With ``generator = None`` it is ``torch.nn.functional.dropout``. With
    ``whole_channels`` one draw per (sample, channel) drops a whole ``(B, C, H, W)`` map
    (``torch.nn.functional.dropout2d``).
    """

    def __init__(self, p: float = 0.5, whole_channels: bool = False,
                 name: str = "p_dropout") -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {p!r}")
        self.p, self.whole_channels = p, whole_channels
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            drop = F.dropout2d if self.whole_channels else F.dropout
            return drop(x, self.p, training=True)
        shape = (*x.shape[:2], *(1,) * (x.dim() - 2)) if self.whole_channels else x.shape
        keep = torch.rand(shape, generator=self.generator, device=self.generator.device)
        keep = (keep >= self.p).to(device=x.device, dtype=x.dtype)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", whole_channels=True" if self.whole_channels else "")


class GroupDropout(Dropout):
    """Drop groups of channels together: one draw per (sample, group) with probability
    ``p`` zeroes every channel of the group (the kept ones scaled by ``1 / (1 - p)``);
    channels in no group pass unchanged. Identity in eval mode.

    Args:
        groups: channel indices of each group.
        n_channels: number of channels of the input.

    **Shapes:** ``(B, C, ...)`` -> same.
    """

    def __init__(self, p: float, groups: list[list[int]], n_channels: int,
                 name: str = "pathway_dropout") -> None:
        super().__init__(p, whole_channels=True, name=name)
        group_of = torch.full((n_channels,), len(groups), dtype=torch.long)
        for g, channels in enumerate(groups):
            group_of[torch.as_tensor(channels, dtype=torch.long)] = g
        self.register_buffer("group_of", group_of, persistent=False)
        self.n_groups = len(groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or self.n_groups == 0:
            return x
        device = self.generator.device if self.generator is not None else x.device
        draw = torch.rand((x.shape[0], self.n_groups), generator=self.generator, device=device)
        keep = (draw >= self.p).to(device=x.device, dtype=x.dtype) / (1.0 - self.p)
        keep = torch.cat([keep, keep.new_ones(x.shape[0], 1)], dim=1)[:, self.group_of]
        return x * keep.reshape(*keep.shape, *(1,) * (x.dim() - 2))

    def extra_repr(self) -> str:
        return f"p={self.p}, groups={self.n_groups}"


class RunningRMS(nn.Module):
    """Divide each channel by a running estimate of its root mean square.

    ``y[:, c] = x[:, c] / sqrt(s_c + eps)`` where ``s_c`` is an exponential moving average
    (``momentum``) of the mean of ``x[:, c] ** 2`` over all other dimensions, updated from
    each training-mode batch (without gradient) *before* it is used, and set to the first
    batch's value. Train and eval mode compute the same function of the current ``s``, so
    a model fitted in training mode predicts the same in eval mode (unlike batch norm,
    whose batch statistics differ from its running ones when the inputs are tiny). There
    is no centring: the inputs are meant to be changes from rest.

    In training mode the gradient is that of dividing by the batch's own RMS (the forward
    value is unchanged: batch renormalisation, Ioffe 2017), so rescaling a channel's input
    leaves the loss unchanged and the network upstream gains nothing by growing its
    responses while the running statistic lags behind.

    **Shapes:** ``(B, C, ...)`` -> same.
    """

    def __init__(self, channels: int, momentum: float = 0.01, eps: float = 1e-12) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum!r}")
        self.momentum, self.eps = momentum, eps
        self.register_buffer("mean_square", torch.ones(channels))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.mean_square.numel():
            raise ValueError(f"expected {self.mean_square.numel()} channels, got {x.shape[1]}")
        if self.training:
            batch = x.transpose(0, 1).reshape(x.shape[1], -1).pow(2).mean(1)
            with torch.no_grad():
                if bool(self.initialized):
                    self.mean_square.lerp_(batch.detach().to(self.mean_square.dtype), self.momentum)
                else:
                    self.mean_square.copy_(batch.detach())
                    self.initialized.fill_(True)
            renorm = (batch + self.eps).rsqrt()
            scale = renorm / renorm.detach() * (self.mean_square + self.eps).rsqrt()
        else:
            scale = (self.mean_square + self.eps).rsqrt()
        return x * scale.view(1, -1, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return f"{self.mean_square.numel()}, momentum={self.momentum}"
