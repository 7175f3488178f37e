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
* :math:`\partial L/\partial v_t = a - q + f'(v_t) \odot W^T q` (plus the gradient of the
  response recorded at :math:`t`): one transposed CSR product per step;
* the strength gradient :math:`\partial L/\partial s_p = \sum_{e \in p} c_e \sum_{t,b}
  q_{t,b,t(e)} f(v_{t,b,s(e)})`: the per-edge sums are accumulated for several steps at once
  (one sampled dense-dense product, ``torch.sparse.sampled_addmm``, on the pattern of
  :math:`W` per chunk of steps) and reduced to the type pairs once at the end.

Gradients reach the per-node bias and time constants, the pair strengths, the input currents
(hence the movie) and the initial state (hence :func:`flygnn.simulate.relax_rest`); the
floors and clamps of the context (:math:`\max(\tau, dt)`, :math:`\max(s, 0)`) are outside
this function, in autograd. The result equals autograd's gradient to rounding (float64:
within 1e-10 relative in ``tests/test_bptt.py``); :math:`f'(0) = 0` for ReLU, as in autograd, and
other activations take their derivative from autograd. The backward pass is not itself
differentiable (double backward raises).

On by default: :func:`flygnn.simulate.simulate` takes this path for fused :class:`Graded`
networks with the Euler method whenever gradients are recorded. Set
``flygnn.bptt.ENABLED = False`` to record the simulation with autograd instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from flygnn import threads
from flygnn.neurons import Graded
from flygnn.sparse import _sparse_csr, spmm

__all__ = ["ENABLED", "applies", "simulate_graded"]

#: whether :func:`flygnn.simulate.simulate` takes this path when it applies (on by default)
ENABLED = True
#: columns (steps x batch) of one strength-gradient product (``sampled_addmm``)
CHUNK_COLUMNS = 64
_WIDE = {4: torch.float32, 8: torch.float64, 16: torch.complex128}


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
        # one (N, B) tensor per step, not one (T, N, B) block: blocks above the allocator's
        # mmap threshold are returned to the system and page-faulted in again on every call
        states = [v0.t().clone(memory_format=torch.contiguous_format)]
        drives = []
        bias_nm = bias.unsqueeze(1).expand(n, batch).contiguous()
        inv_tau_nm = inv_tau.unsqueeze(1).expand(n, batch).contiguous()
        matrix = bound.matrix
        out = v0.new_empty(batch, steps, n if index is None else len(index))
        for t in range(steps):
            v = states[t]
            d = torch.sub(bias_nm, v)
            d.addmm_(matrix, f(v))  # (b - v) + W f(v), as the no-grad step
            if isinstance(input_nodes, slice):
                d[input_nodes] += currents[:, t].t()
            else:
                d.index_add_(0, input_nodes, currents[:, t].t())
            drives.append(d)
            nxt = torch.mul(d, inv_tau_nm).mul_(dt).add_(v)
            states.append(nxt)
            out[:, t] = (nxt if index is None else nxt.index_select(0, index)).t()
        fctx.setup, fctx.states, fctx.drives = setup, states, drives
        fctx.inv_tau_nm = inv_tau_nm
        fctx.cur_shape = currents.shape
        return out, states[steps].t()

    @staticmethod
    @once_differentiable
    def backward(fctx, grad_resp, grad_final):
        states = fctx.states
        n, batch = states[0].shape
        need_cur, need_bias, need_tau, need_s = fctx.needs_input_grad[1:5]
        a = (grad_final.t().clone(memory_format=torch.contiguous_format)
             if grad_final is not None else states[0].new_zeros(n, batch))  # dL/dv_{t+1}
        acc = {"bias": torch.zeros_like(a) if need_bias else None,
               "tau": torch.zeros_like(a) if need_tau else None,
               "s": _EdgeSums(fctx.setup[0], batch) if need_s else None,
               "cur": states[0].new_zeros(fctx.cur_shape) if need_cur else None}
        with threads.num_threads():
            a = _adjoint(fctx, grad_resp, a, acc)
            grad_s = acc["s"].pair_sums() if need_s else None
        dt = fctx.setup[3]
        return (a.t() if fctx.needs_input_grad[0] else None, acc["cur"],
                acc["bias"].sum(1) if need_bias else None,
                acc["tau"].sum(1).mul_(dt) if need_tau else None, grad_s, None)


class _EdgeSums:
    r"""Per-edge sums :math:`G_e = \sum_{t,b} q_{t,b,t(e)} \, f(v_{t,b,s(e)})`, collected for
    ``CHUNK_COLUMNS // B`` steps at a time and added with one ``sampled_addmm`` on the
    pattern of the adjacency (rows = targets); :meth:`pair_sums` gives
    :math:`\partial L / \partial s_p = \sum_{e \in p} c_e G_e`."""

    def __init__(self, bound, batch: int):
        self.bound, self.batch = bound, batch
        matrix = bound.matrix
        n = matrix.shape[0]
        self.steps = max(1, CHUNK_COLUMNS // batch)
        dtype, device = bound.coeff.dtype, matrix.device
        self.sums = _sparse_csr(matrix.crow_indices(), matrix.col_indices(),
                                torch.zeros(matrix.values().shape, dtype=dtype, device=device),
                                matrix.shape)
        self.q = torch.empty(n, self.steps * batch, dtype=dtype, device=device)
        self.x = torch.empty_like(self.q)
        self.filled = 0

    def add(self, q: torch.Tensor, fv: torch.Tensor) -> None:
        """Record one step: ``q`` and ``f(v)``, ``(N, B)`` contiguous."""
        _put_columns(self.q, self.filled, q)
        _put_columns(self.x, self.filled, fv)
        self.filled += 1
        if self.filled == self.steps:
            self.flush()

    def flush(self) -> None:
        if self.filled:
            width = self.filled * self.batch
            q, x = self.q[:, :width], self.x[:, :width]
            if width < self.q.shape[1]:
                q, x = q.contiguous(), x.contiguous()
            torch.sparse.sampled_addmm(self.sums, q, x.t(), out=self.sums)
            self.filled = 0

    def pair_sums(self) -> torch.Tensor:
        """``(P,)`` strength gradient."""
        self.flush()
        s = self.bound.structure
        coeff = self.bound.coeff
        pair, c = s.derived(("bptt_csr_pair", coeff.dtype), coeff, lambda: (  # CSR order
            s.pair_index[s.perm].to(torch.int32), coeff.detach()[s.perm]))
        grad = coeff.new_zeros(s.num_pairs).index_add_(0, pair, self.sums.values() * c)
        return grad.to(self.bound.strength.dtype)


def _put_columns(buffer: torch.Tensor, slot: int, x: torch.Tensor) -> None:
    """``buffer[:, slot * B:(slot + 1) * B] = x`` for a contiguous ``(N, B)`` ``x``; rows of
    4, 8 or 16 bytes move as one element (a strided copy of short rows is several times
    slower on CPU)."""
    width = x.shape[1]
    wide = _WIDE.get(width * x.element_size())
    if wide is not None and x.device.type == "cpu":
        buffer.view(wide)[:, slot].copy_(x.view(wide)[:, 0])
    else:
        buffer[:, slot * width:(slot + 1) * width] = x


def _adjoint(fctx, grad_resp, a: torch.Tensor, acc: dict) -> torch.Tensor:
    """The reverse loop; accumulates into ``acc`` and returns dL/dv_0 ``(N, B)``."""
    bound, input_nodes, f, dt, index = fctx.setup
    states, drives, inv_tau_nm = fctx.states, fctx.drives, fctx.inv_tau_nm
    relu = f is F.relu or f is torch.relu
    transposed = bound.transposed()
    rate = inv_tau_nm * dt  # dv_{t+1} / dd_t
    for t in reversed(range(len(drives))):
        if grad_resp is not None:
            g = grad_resp[:, t].t()
            if index is None:
                a.add_(g)
            else:
                a.index_add_(0, index, g)
        q = a * rate
        if acc["tau"] is not None:
            acc["tau"].addcmul_(a, drives[t])
        if acc["bias"] is not None:
            acc["bias"].add_(q)
        if acc["cur"] is not None:
            acc["cur"][:, t] = _rows(input_nodes, q).t()
        v = states[t]
        if acc["s"] is not None:
            acc["s"].add(q, f(v))
        gx = spmm(transposed, q)  # W^T q, (N, B)
        if relu:
            gx = torch.ops.aten.threshold_backward(gx, v, 0)  # relu's backward: 0 where v <= 0
        else:
            with torch.enable_grad():
                vv = v.detach().requires_grad_()
                gx = torch.autograd.grad(f(vv), vv, gx)[0]
        a.sub_(q).add_(gx)
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
