r"""The loop gain of a network at a state: how close its rest is to the edge of stability.

Linearised around a state :math:`V^*`, the graded model
:math:`\tau_i \dot V_i = -V_i + b_i + \sum_e w_e f(V_{s(e)})` moves as
:math:`T \dot x = (-I + W D) x` with :math:`W` the connectivity (``W[t, s] = w_e``) and
:math:`D = \mathrm{diag}(f'(V^*))` the cells that pass a signal at that state. Its *loop
gain* is the largest real part of the eigenvalues of :math:`W D`. With equal time constants
the state is stable exactly while the loop gain is below 1; a gain crossing 1 is a mode that
feeds itself, and the grey rest starts to grow without bound (the failure that stalls
training near the edge; ``flygnn/recipes/README.md``). The gain is the same for any model
whose synapses pass :math:`W f(V)` at steady state (e.g. the synaptic filter's unit DC gain).

:func:`loop_gain` returns it as a tensor whose gradient with respect to the synapse strengths
is the eigenvalue's derivative :math:`\mathrm{Re}\,(u^T \partial A\, v) / (u^T v)` (right and
left eigenvectors held constant); :math:`D` is held constant too (for ReLU it is piecewise
constant, so the gradient is exact almost everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flygnn.linsolve import rightmost_eig

__all__ = ["LoopGain", "loop_gain"]


@dataclass
class LoopGain:
    """The loop gain at a state and what computing it again needs.

    Attributes:
        value: the largest real part of the eigenvalues of ``W D`` (0-d tensor; its gradient
            reaches the synapse strengths when computed with ``grad=True``).
        eigenvalue: that eigenvalue (complex, no gradient).
        right, left: its right and left eigenvectors (complex ``(N,)``); pass the result as
            ``warm`` to the next call, while the network changes slowly, to need one
            Arnoldi cycle instead of several.
        sensitivity: ``d value / d strength`` per type pair (``(P,)`` float64); ``value``
            is ``strength . sensitivity``, so it can be updated for new strengths without a
            new eigenvector (first order).
        converged: whether both eigenvectors reached the tolerance.
        active: the number of cells whose ``f'`` is not zero at the state.
    """

    value: torch.Tensor
    eigenvalue: torch.Tensor
    right: torch.Tensor
    left: torch.Tensor
    sensitivity: torch.Tensor
    converged: bool
    active: int


def _derivative(net, state) -> torch.Tensor:
    """``f'(V)`` at a state's activity (``(N,)``, float64, no gradient)."""
    f = getattr(net.dynamics, "f", None)
    if f is None:
        raise ValueError(f"loop_gain: the neuron model {type(net.dynamics).__name__!r} has no "
                         "synaptic transfer function f; the loop gain needs one")
    v = net.dynamics.activity(state)
    v = v[0] if v.dim() == 2 else v
    if v.shape != (net.num_nodes,):
        raise ValueError(f"loop_gain: state: expected (N,) or (B, N) activity with "
                         f"N = {net.num_nodes}, got {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise ValueError("loop_gain: the state holds non-finite values")
    with torch.enable_grad():
        x = v.detach().double().requires_grad_(True)
        (slope,) = torch.autograd.grad(f(x).sum(), x)
    return slope


def loop_gain(net, state, warm: LoopGain | None = None, grad: bool = False, krylov: int = 40,
              tol: float = 1e-3, max_restarts: int = 3, ctx=None) -> LoopGain:
    """The loop gain of ``net`` linearised at ``state`` (module docstring).

    The top of the spectrum of a lattice network is a dense band of eigenvalues (one per
    spatial frequency), so the leading eigenvector is computed to a loose tolerance: the
    value is the two-sided Rayleigh quotient ``Re (u^T A v) / (u^T v)`` of the vectors found,
    within ``tol`` of the leading eigenvalue when ``converged``, and its gradient lowers the
    band's top modes.

    Args:
        net: a :class:`~flygnn.network.Network` whose neuron model has a transfer function
            ``f`` (graded models).
        state: a state of the network (e.g. :func:`~flygnn.simulate.steady_state`); of a
            batch, the first sample is used.
        warm: the previous result, to start from its eigenvectors.
        grad: return ``value`` with a gradient to the synapse strengths.
        krylov, tol, max_restarts: Arnoldi cycle length, tolerance and restarts
            (:func:`~flygnn.linsolve.rightmost_eig`).
        ctx: a context from ``net.prepare()`` to reuse.

    Returns:
        a :class:`LoopGain`.
    """
    ctx = ctx if ctx is not None else net.prepare()
    slope = _derivative(net, state)
    strength = ctx.strength if grad else ctx.strength.detach()
    source, target, pair = ctx.source.long(), ctx.target.long(), ctx.pair_index.long()
    n = net.num_nodes
    with torch.no_grad():
        coeff = ctx.coeff.detach().double()
        a = coeff * strength.detach().double()[pair] * slope[source]
        matrix = torch.sparse_coo_tensor(torch.stack([target, source]), a, (n, n),
                                         check_invariants=False).coalesce()
        forward, transposed = matrix.to_sparse_csr(), matrix.t().coalesce().to_sparse_csr()
        theta, v, ok_r = rightmost_eig(lambda x: forward @ x, _start(warm, "right", n, a),
                                       krylov, tol, max_restarts)
        theta_l, u, ok_l = rightmost_eig(lambda x: transposed @ x, _start(warm, "left", n, a),
                                         krylov, tol, max_restarts)
        if float(theta_l.imag) * float(theta.imag) < 0:  # the conjugate of the pair
            u = u.conj()
        # d lambda / d strength_p = sum over p's edges of coeff u[t] f'(V_s) v[s] / (u^T v)
        per_edge = (u[target] * slope[source] * v[source] / (u @ v)).real * coeff
        sensitivity = torch.zeros(strength.shape[0], dtype=torch.float64,
                                  device=a.device).index_add_(0, pair, per_edge)
    value = (strength.double() * sensitivity).sum().to(strength.dtype)
    return LoopGain(value=value, eigenvalue=theta, right=v, left=u, sensitivity=sensitivity,
                    converged=ok_r and ok_l, active=int((slope != 0).sum()))


def _start(warm: LoopGain | None, side: str, n: int, like: torch.Tensor) -> torch.Tensor:
    """A real starting vector: the warm result's eigenvector (its real plus imaginary part),
    else all ones."""
    vector = None if warm is None else getattr(warm, side)
    if vector is None or vector.shape != (n,):
        return torch.ones(n, dtype=torch.float64, device=like.device)
    x = (vector.real + vector.imag).to(like.device, torch.float64)
    return x if float(x.norm()) > 0 else torch.ones_like(x)
