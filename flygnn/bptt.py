r"""Backpropagation through time for graded dynamics, with a hand-written adjoint.

Training differentiates a whole simulation. Recording it step by step with autograd keeps
about six ``(B, N)`` tensors per Euler step alive and walks a graph of a dozen nodes per step
in the backward pass. :func:`simulate_graded` runs the same forward pass as the no-grad path
(:mod:`flygnn.fused`, bit for bit), keeps two ``(N, B)`` tensors per step (the state
:math:`v_t` and the drive :math:`d_t`), and its backward pass is the adjoint recursion of

.. math::
    d_t = (b - v_t) + W(s) f(v_t) + x_t, \qquad v_{t+1} = v_t + (d_t \, \tau^{-1}) \, dt:

with :math:`a = \partial L / \partial v_{t+1}` and :math:`q = a \, \tau^{-1} dt`,

* :math:`\partial L/\partial b \mathrel{+}= q`, :math:`\partial L/\partial \tau^{-1}
  \mathrel{+}= a \, d_t \, dt`, :math:`\partial L/\partial x_t = q`;
* :math:`\partial L/\partial s` and :math:`W^T q` from one call of
  :meth:`flygnn.sparse.BoundAdjacency.backward` (one CSR product of the size of the graph);
* :math:`\partial L/\partial v_t = a - q + f'(v_t) \odot W^T q` (plus the gradient of the
  response recorded at :math:`t`).

Gradients reach the per-node bias and time constants, the pair strengths, the input currents
(hence the movie) and the initial state (hence :func:`flygnn.simulate.relax_rest`).

Opt-in (``flygnn.bptt.ENABLED = True``): it equals autograd on the tests of
``tests/test_perf.py``, but in a training step whose grey rest comes from
:func:`~flygnn.simulate.relax_rest` a few entries (one time constant, one strength at 0 out of
669) differ from autograd by up to 8 % (``tests/test_train_gradients.py``), so
:func:`~flygnn.simulate.simulate` uses autograd unless it is enabled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flygnn import threads
from flygnn.neurons import Graded
from flygnn.sparse import spmm

__all__ = ["ENABLED", "applies", "simulate_graded"]

#: whether :func:`flygnn.simulate.simulate` takes this path when it applies (off by default)
ENABLED = False


def applies(net, state) -> bool:
    """Whether ``net`` and ``state`` take this path (:data:`ENABLED`, fused :class:`Graded`,
    one tensor)."""
    dyn = net.dynamics
    return ENABLED and (type(dyn) is Graded and dyn.fused and isinstance(state, torch.Tensor)
            and state.dim() == 2)


def _rows(input_nodes, x: torch.Tensor) -> torch.Tensor:
    return x[input_nodes] if isinstance(input_nodes, slice) else x.index_select(0, input_nodes)


class _GradedBPTT(torch.autograd.Function):
    @staticmethod
    def forward(fctx, v0, currents, bias, inv_tau, strength, setup):
        bound, input_nodes, f, dt, index = setup
        batch, steps = currents.shape[:2]
        n = v0.shape[1]
        states = v0.new_empty(steps + 1, n, batch)
        drives = v0.new_empty(steps, n, batch)
        states[0] = v0.t()
        bias_nm = bias.unsqueeze(1).expand(n, batch).contiguous()
        inv_tau_nm = inv_tau.unsqueeze(1).expand(n, batch).contiguous()
        matrix = bound.matrix
        for t in range(steps):
            v = states[t]
            d = drives[t]
            torch.sub(bias_nm, v, out=d)
            d.addmm_(matrix, f(v))  # (b - v) + W f(v), as the no-grad step
            if isinstance(input_nodes, slice):
                d[input_nodes] += currents[:, t].t()
            else:
                d.index_add_(0, input_nodes, currents[:, t].t())
            nxt = states[t + 1]
            torch.mul(d, inv_tau_nm, out=nxt)
            nxt.mul_(dt).add_(v)
        fctx.setup, fctx.states, fctx.drives = setup, states, drives
        fctx.inv_tau_nm = inv_tau_nm
        fctx.cur_shape = currents.shape
        recorded = states[1:] if index is None else states[1:].index_select(1, index)
        return recorded.permute(2, 0, 1).contiguous(), states[steps].t()

    @staticmethod
    def backward(fctx, grad_resp, grad_final):
        states = fctx.states
        n, batch = states.shape[1:]
        need_cur, need_bias, need_tau, need_s = fctx.needs_input_grad[1:5]
        a = (grad_final.t().contiguous() if grad_final is not None
             else states.new_zeros(n, batch))  # dL/dv_{t+1}
        acc = {"bias": torch.zeros_like(a) if need_bias else None,
               "tau": torch.zeros_like(a) if need_tau else None,
               "s": fctx.setup[0].strength.new_zeros(fctx.setup[0].strength.shape)
               if need_s else None,
               "cur": states.new_zeros(fctx.cur_shape) if need_cur else None}
        with threads.num_threads():
            a = _adjoint(fctx, grad_resp, a, acc)
        dt = fctx.setup[3]
        return (a.t() if fctx.needs_input_grad[0] else None, acc["cur"],
                acc["bias"].sum(1) if need_bias else None,
                acc["tau"].sum(1).mul_(dt) if need_tau else None, acc["s"], None)


def _adjoint(fctx, grad_resp, a: torch.Tensor, acc: dict) -> torch.Tensor:
    """The reverse loop; accumulates into ``acc`` and returns dL/dv_0 ``(N, B)``."""
    bound, input_nodes, f, dt, index = fctx.setup
    states, drives, inv_tau_nm = fctx.states, fctx.drives, fctx.inv_tau_nm
    relu = f is F.relu or f is torch.relu
    for t in reversed(range(drives.shape[0])):
        if grad_resp is not None:
            g = grad_resp[:, t].t()
            if index is None:
                a.add_(g)
            else:
                a.index_add_(0, index, g)
        q = a * inv_tau_nm
        q.mul_(dt)
        if acc["tau"] is not None:
            acc["tau"].addcmul_(a, drives[t])
        if acc["bias"] is not None:
            acc["bias"].add_(q)
        if acc["cur"] is not None:
            acc["cur"][:, t] = _rows(input_nodes, q).t()
        v = states[t]
        if acc["s"] is not None:
            gx, gs = bound.backward(f(v).contiguous(), q)
            acc["s"].add_(gs)
        else:
            gx = spmm(bound.transposed(), q).t()
        gx = gx.t()  # W^T q, (N, B)
        if relu:
            gx = gx * (v > 0)
        else:
            with torch.enable_grad():
                vv = v.detach().requires_grad_()
                gx = torch.autograd.grad(f(vv), vv, gx)[0]
        a = a - q + gx
    return a


def simulate_graded(net, ctx, movie: torch.Tensor, dt: float, state: torch.Tensor,
                    index: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable simulation of a graded network (see the module docstring).

    Args:
        net: the network (its ``frame_input`` turns frames into photoreceptor currents).
        ctx: ``net.prepare()``.
        movie: ``(B, T, n_hexals)``; state: ``(B, N)`` initial state; index: recorded nodes.

    Returns:
        responses ``(B, T, K)`` and the final state ``(B, N)``, both with autograd.
    """
    currents = torch.stack([net.frame_input(frame) for frame in movie.unbind(1)], 1)
    setup = (ctx.adjacency, ctx.input_nodes, net.dynamics.f, float(dt), index)
    return _GradedBPTT.apply(state, currents, ctx.bias, ctx.inv_time_const(dt), ctx.strength,
                             setup)
