r"""The explicit Euler step of graded dynamics with few, contiguous passes (no autograd).

The Euler step of :class:`~flygnn.neurons.Graded`,

.. math::
    v' = v + \big( \tau_\mathrm{eff}^{-1} \, ((b - v) + W f(v) + x) \big) \, dt,

is computed here in flyvis's float32 operation order (bit for bit what the autograd path
computes) with one activation pass, one fused ``(b - v) + W f(v)`` (a CSR ``addmm``: the
sparse product accumulates onto ``b - v`` in the same kernel), the input added to the
photoreceptor slice, and three in-place passes for the update. The per-node vectors ``b``
and :math:`\tau_\mathrm{eff}^{-1}` are expanded once per batch size into the node-major
layout of the state, so that every pass is a linear sweep over contiguous memory (broadcasting
an ``(N,)`` vector over a node-major ``(B, N)`` state is several times slower on CPU).

Fewer passes means fewer OpenMP parallel regions per step, which is what makes a step robust
when other processes load the machine (:mod:`flygnn.threads`).
"""

from __future__ import annotations

import torch

__all__ = ["graded_euler_step", "node_major_rows"]


def node_major_rows(ctx, name: str, vector: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``vector`` ``(N,)`` expanded to a node-major ``(B, N)`` tensor, made once per forward
    pass (``ctx.once``)."""

    def make():
        rows = vector.new_empty(vector.shape[0], batch_size)
        return rows.copy_(vector.unsqueeze(1).expand(-1, batch_size)).t()

    return ctx.once(("node_major", name, batch_size), make)


def graded_euler_step(v: torch.Tensor, activation, input: torch.Tensor | None, ctx,
                      dt: float) -> torch.Tensor:
    """One Euler step of graded dynamics without autograd; same numbers as the reference.

    Args:
        v: ``(B, N)`` state (node-major memory; other layouts are copied once).
        activation: the synaptic transfer function ``f``.
        input: ``(B, N_in)`` current into ``ctx.input_nodes``, or None.
        ctx: the network's :class:`~flygnn.context.Context`.
        dt: step in seconds.

    Returns:
        the next state ``(B, N)``, node-major.
    """
    batch = v.shape[0]
    if v.stride(0) != 1 and batch > 1:
        v = v.t().contiguous().t()
    bias = node_major_rows(ctx, "bias", ctx.bias, batch)
    inv_tau = node_major_rows(ctx, ("inv_tau", dt), ctx.inv_time_const(dt), batch)
    drive = ctx.adjacency.addmm_(bias - v, activation(v))  # (b - v) + W f(v), one kernel
    ctx.add_input(drive, input)
    return drive.mul_(inv_tau).mul_(dt).add_(v)
