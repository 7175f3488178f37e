"""Simulation: movies in, responses out (functions, no stimulus buffer).

* :func:`simulate` integrates a movie, one step per frame of the integrator named by
  ``method`` (:mod:`flygnn.integrators`: ``"euler"``, flyvis's, by default;
  ``"exponential_euler"``, ``"rk4"``), and returns the activity after every step (output
  frame ``t`` already contains the effect of frame ``t``).
* :func:`steady_state` and :func:`fade_in_state` compute flyvis's initial states.
* ``Network.step`` advances one frame for closed-loop use.

A frame holds one luminance per column (``n_hexals`` = 721 at extent 15); it is added as a
current to every photoreceptor type R1-R8 of that column.

**Gradients.** ``grad=None`` (the default of :func:`simulate`) follows the caller: inside
``torch.no_grad()`` nothing is recorded, otherwise the whole simulation is differentiable
(training uses this path). ``grad=False`` / ``grad=True`` force either mode. Analyses
should pass ``grad=False`` (or wrap in ``torch.no_grad()``): with grad, every step keeps a
few ``(B, N)`` tensors alive for the backward pass. Initial states (:func:`steady_state`,
:func:`fade_in_state`) are computed without gradients unless asked (``grad=True``).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import torch

from flygnn import bptt, stacked, threads
from flygnn._checks import (  # noqa: F401 - check_dt, check_frames, record_index re-exported
    MAX_DT,
    IntegrationWarning,
    check_dt,
    check_finite,
    check_frames,
    check_record,
    check_state,
    check_time,
    record_index,
)
from flygnn.integrators import euler, get_integrator
from flygnn.linsolve import gmres
from flygnn.neurons import broadcast_state

__all__ = ["simulate", "steady_state", "relax_rest", "state_size", "RestGate", "fade_in_state",
           "IntegrationWarning", "check_dt", "record_index"]

_LONG_STEP = 1e3  # seconds: longer than any time constant (the map to the fixed point)


def _grad_mode(grad: bool | None):
    if grad is None:
        return contextlib.nullcontext()
    return torch.enable_grad() if grad else torch.no_grad()


def _integrate(net, inputs, dt, state, ctx, index, out, method="euler"):
    """Integration loop over ``inputs`` (a sequence of ``(B, n_hexals)`` frames or None)."""
    dynamics, step = net.dynamics, get_integrator(method)
    records = []
    with threads.num_threads() as loop:  # the thread policy of flygnn's loops
        for t, frame in enumerate(inputs):
            loop.tick()
            current = None if frame is None else net.frame_input(frame)
            state = step(dynamics, state, current, ctx, dt)
            if out is None and index is None:
                continue
            activity = dynamics.activity(state)
            if index is not None:
                activity = activity.index_select(1, index)
            if isinstance(out, torch.Tensor):
                out[:, t].copy_(activity)
            elif isinstance(out, list):
                records.append(activity)
    return state, records


@threads.under_policy
def simulate(net, movie, dt: float, t_pre: float = 1.0, initial_state=None, record=None,
             grad: bool | None = None, return_state: bool = False, method: str = "euler"):
    """Responses of a network to a movie.

    Args:
        net: a :class:`~flygnn.network.Network`, or several networks sharing one graph (a
            list, an :class:`~flygnn.analysis.ensembles.Ensemble` or a
            :class:`~flygnn.stacked.StackedNetworks`): simulated in one pass without
            gradients, responses ``(n_models, B, T, K)`` (:func:`~flygnn.stacked.simulate_stacked`).
        movie: ``(B, T, n_hexals)`` luminance per frame and column (float; cast to the
            network's dtype and device).
        dt: seconds per frame (one integration step per frame); ``> 1/50`` warns.
        t_pre: seconds of grey (0.5) before the movie, used when ``initial_state`` is None
            (:func:`steady_state`; ``t_pre <= 0`` starts from rest).
        initial_state: a state of batch size 1 or B (then ``t_pre`` is ignored).
        record: None (all nodes), ``"central"``, ``"output"`` or a list of cell types.
        grad: None follows the caller's grad mode; True/False force it.
        return_state: also return the state after the last frame (to continue later).
        method: the integrator (:mod:`flygnn.integrators`), also for the grey ``t_pre``.

    Returns:
        responses ``(B, T, K)``: activity after each step, with ``K = N`` (flyvis node order),
        65 (``"central"``, type order), ``34 * n_hexals`` (``"output"``) or the recorded
        types' node count; and, with ``return_state``, the final state.

    Raises:
        ValueError: wrong movie shape, NaN/inf in the movie, ``dt <= 0``, bad ``record``,
            unknown ``method``.
    """
    if stacked.is_stack(net):  # several networks (a list, an Ensemble)
        stack = stacked.as_stack(net)
        if stack.reason is None and method == "euler" and not grad:  # one pass
            return stacked.simulate_stacked(stack, movie, dt, t_pre, initial_state, record,
                                            return_state)
        runs = [simulate(n, movie, dt, t_pre, None if initial_state is None else initial_state[i],
                         record, grad=grad, return_state=True, method=method)
                for i, n in enumerate(stack.networks)]  # model by model
        responses = torch.stack([r[0] for r in runs])
        return (responses, torch.stack([r[1] for r in runs])) if return_state else responses
    dt, t_pre = check_dt(dt), check_time(t_pre, "t_pre")
    get_integrator(method)  # an unknown name fails before any work
    movie = check_frames(movie, net.n_hexals, "movie", 3, net.bias)
    batch, steps = movie.shape[:2]
    index = record_index(net, record)
    if index is not None:
        index = index.to(movie.device)
    with _grad_mode(grad):
        ctx = net.prepare()
        if initial_state is None:
            state = steady_state(net, t_pre, dt, batch_size=batch, ctx=ctx, method=method)
        else:
            state = broadcast_state(check_state(initial_state, net.num_nodes), batch)
        size = net.num_nodes if index is None else len(index)
        if torch.is_grad_enabled() and method == "euler" and bptt.applies(net, state):
            responses, state = bptt.simulate_graded(net, ctx, movie, dt, state, index)
        elif torch.is_grad_enabled():
            state, records = _integrate(net, movie.unbind(1), dt, state, ctx, index, [],
                                        method)
            responses = torch.stack(records, 1)
        else:
            responses = movie.new_empty(batch, steps, size)
            state, _ = _integrate(net, movie.unbind(1), dt, state, ctx, index, responses,
                                  method)
    return (responses, state) if return_state else responses


@threads.under_policy
def steady_state(net, t_pre: float | None, dt: float, batch_size: int = 1, value: float = 0.5,
                 state=None, grad: bool = False, ctx=None, method: str = "euler"):
    """State after ``int(t_pre / dt)`` steps (of ``method``) of uniform grey ``value``.

    Starts from ``state`` (None: the dynamics' resting state, ``v = bias``). With
    ``t_pre <= 0`` or None the start state is returned. flyvis's default initial state is
    ``steady_state(net, 1.0, dt, B)``.

    Shapes:
        returns a state of batch size ``batch_size`` (``(B, N)`` for graded dynamics).
    """
    dt, t_pre = check_dt(dt), check_time(t_pre, "t_pre")
    with torch.set_grad_enabled(grad):
        ctx = ctx if ctx is not None else net.prepare()
        if state is None:
            state = net.dynamics.initial_state(ctx, batch_size)
        else:
            state = broadcast_state(check_state(state, net.num_nodes, "state"), batch_size)
        steps = int(t_pre / dt) if t_pre is not None and t_pre > 0 else 0
        frame = net.bias.new_full((batch_size, net.n_hexals), value)
        state, _ = _integrate(net, [frame] * steps, dt, state, ctx, None, None, method)
    return state


class RestGate:
    """Switches the gradient through :func:`relax_rest` on and off after the graph is built.

    ``enabled = False`` while a gradient is taken makes the rest a constant for that
    gradient (the start state detached, as flyvis trains), e.g. for the activity penalty,
    whose plain SGD step has no step-size control: near the edge of stability the implicit
    gradient of the rest grows without bound, and one such step moves the resting potentials
    by orders of magnitude."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled


def relax_rest(net, state, max_steps: int = 500, tol: float = 1e-6, value: float = 0.5,
               gate: RestGate | None = None):
    """The grey rest ``state`` (converged, e.g. :func:`steady_state`), differentiable in the
    parameters through the implicit function theorem.

    An Euler step longer than every time constant (the graded models floor them at
    ``dt``) is the map ``F: v -> b + W f(v) + x`` whose fixed point is the grey steady state.
    The result is ``F(state)`` (equal to ``state`` at convergence); its backward pass solves
    ``(I - dF/dv)^T u = g`` with GMRES (:func:`~flygnn.linsolve.gmres`: at most ``max_steps``
    vector-Jacobian products, residual below ``tol * |g|``), so the gradient says how the
    rest moves with the parameters. (The plain fixed-point iteration of this system, the
    Neumann series of ``(I - W D)^-1``, converges at the rate of the network's loop gain,
    which training drives towards 1.) Training from a detached start state instead
    differentiates the drift from the old rest to the new one, a transient that is not in
    the responses after the update.

    Args:
        gate: a :class:`RestGate`; while its ``enabled`` is False, no gradient flows through
            the rest (the backward pass returns zeros there).

    Shapes:
        ``state`` of batch size B (or 1, broadcast with the grey frame); returns batch B.

    Warns:
        IntegrationWarning: the adjoint did not converge within ``max_steps``.
    """
    if max_steps < 1 or not tol > 0:
        raise ValueError(f"relax_rest: need max_steps >= 1 and tol > 0, got {max_steps}, {tol}")
    ctx, dynamics = net.prepare(), net.dynamics
    batch = dynamics.activity(state).shape[0]
    state = broadcast_state(state, batch)
    is_tuple = isinstance(state, tuple)
    tensors = state if is_tuple else (state,)
    shapes, sizes = [t.shape for t in tensors], [t.numel() for t in tensors]
    current = net.frame_input(net.bias.new_full((batch, net.n_hexals), value))

    def unflatten(flat):
        parts = [p.reshape(shape) for p, shape in zip(flat.split(sizes), shapes)]
        return tuple(parts) if is_tuple else parts[0]

    def relax(flat, context):  # F on the concatenated state
        out = euler(dynamics, unflatten(flat), current, context, _LONG_STEP)
        return torch.cat([o.reshape(-1) for o in (out if is_tuple else (out,))])

    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    out = relax(flat, ctx)
    if out.requires_grad:
        with torch.no_grad():  # the adjoint's products need dF/dv only: no parameter graph
            constants = net.prepare()
        z = flat.clone().requires_grad_()
        f = relax(z, constants)

        def adjoint(g):  # solve (I - J^T) u = g, J = dF/dv at the rest
            if gate is not None and not gate.enabled:
                return torch.zeros_like(g)

            def matvec(u):
                return u - torch.autograd.grad(f, z, u, retain_graph=True)[0]

            u, converged, _ = gmres(matvec, g, tol, max_steps)
            if not converged:
                warnings.warn(IntegrationWarning(
                    f"relax_rest: the adjoint did not converge in {max_steps} steps (loop gain "
                    "near 1?); raise max_steps (optim.rest_grad_steps)"), stacklevel=2)
            return u

        out.register_hook(adjoint)
    return broadcast_state(unflatten(out), batch)


def state_size(state) -> float:
    """The largest magnitude in a state (a tensor or a tuple of them); ``inf`` when any entry
    is not finite. A grey rest that has run away -- a mode with loop gain above 1 growing
    through the whole ``t_pre`` -- is many orders of magnitude above a settled one."""
    worst = 0.0
    for tensor in state if isinstance(state, tuple) else (state,):
        size = float(tensor.detach().abs().max()) if tensor.numel() else 0.0
        if not size < math.inf:
            return math.inf
        worst = max(worst, size)
    return worst


@threads.under_policy
def fade_in_state(net, t_fade_in: float, dt: float, initial_frames, state=None,
                  grad: bool = False, method: str = "euler"):
    """Fade from grey into the first frames over ``n = int(t_fade_in / dt)`` steps.

    Step ``k`` (``k = 0 .. n-1``) sees ``0.5 + linspace(0, 1, n)[k] * (frame - 0.5)``.
    Starts from ``state`` (None: the resting state); returns the last state.

    Shapes:
        initial_frames ``(B, n_hexals)``; returns a state of batch size B.
    """
    dt = check_dt(dt)
    frames = check_frames(initial_frames, net.n_hexals, "initial_frames", 2, net.bias)
    batch = frames.shape[0]
    with torch.set_grad_enabled(grad):
        ctx = net.prepare()
        state = (net.dynamics.initial_state(ctx, batch) if state is None
                 else broadcast_state(state, batch))
        n = int(t_fade_in / dt) if t_fade_in is not None and t_fade_in > 0 else 0
        ramp = torch.linspace(0, 1, n, dtype=frames.dtype, device=frames.device)
        inputs = [0.5 + ramp[k] * (frames - 0.5) for k in range(n)]
        state, _ = _integrate(net, inputs, dt, state, ctx, None, None, method)
    return state
