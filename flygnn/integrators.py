r"""Integrators: one step of a :class:`~flygnn.neurons.NeuronModel`, chosen by name.

Every integrator maps ``(model, state, input, ctx, dt) -> next state``; the input current
is held constant over the step (one movie frame per step), and the model's discrete events
(``model.after_step``: spikes, resets) follow the continuous update. With
:math:`F(y) = d y / dt` (:meth:`~flygnn.neurons.NeuronModel.derivative`):

* ``"euler"`` (order 1): :math:`y_{n+1} = y_n + F(y_n)\,dt`, in exactly this float32
  order (flyvis's: ``v + ((1/tau) * drive) * dt``, bit for bit with its fixtures).
* ``"exponential_euler"`` (order 1; exact for linear decay):
  :math:`y_{n+1} = y_n + F(y_n)\,\frac{1 - e^{-\lambda dt}}{\lambda}`, with the model's
  linear rate :math:`\lambda` (:meth:`~flygnn.neurons.NeuronModel.decay`), i.e. the decay
  :math:`-\lambda y` is integrated exactly and the rest is held over the step. Stable for
  any ``dt`` on the decay, so spiking models with millisecond synapses can use flyvis's
  10-20 ms frames.
* ``"rk4"`` (order 4): the classical Runge-Kutta scheme,
  :math:`y_{n+1} = y_n + \frac{dt}{6}(k_1 + 2k_2 + 2k_3 + k_4)`.

A model may return None as the derivative of a state tensor that only its ``after_step``
changes (a spike flag, a refractory clock).

Register another with :func:`register_integrator`.

Shapes:
    ``state``: a tensor or a tuple of tensors (``(B, N)`` for the built-in models); ``input``
    ``(B, N_in)`` or None; ``dt`` in seconds; the result has the structure of ``state``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "INTEGRATORS",
    "euler",
    "exponential_euler",
    "get_integrator",
    "register_integrator",
    "rk4",
]

INTEGRATORS: dict[str, Callable] = {}


def register_integrator(name: str) -> Callable:
    """Decorator: make ``fn(model, state, input, ctx, dt) -> state`` available as
    ``method=name``."""
    def wrap(fn: Callable) -> Callable:
        INTEGRATORS[name] = fn
        return fn
    return wrap


def get_integrator(method: str | Callable) -> Callable:
    """The step function of ``method`` (a registered name or the function itself).

    Raises:
        ValueError: an unknown name.
    """
    if callable(method):
        return method
    if method not in INTEGRATORS:
        raise ValueError(f"method: unknown integrator {method!r}; known: {sorted(INTEGRATORS)}")
    return INTEGRATORS[method]


def _tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _like(state, parts: list):
    return tuple(parts) if isinstance(state, (tuple, list)) else parts[0]


def _axpy(state, slope, h):
    """``y + slope * h`` on each tensor of a state (``h`` a float or one per tensor); a None
    slope leaves its tensor to ``after_step``."""
    hs = _tuple(h) if isinstance(h, (tuple, list)) else (h,) * len(_tuple(state))
    return _like(state, [y if d is None else y + d * c
                         for y, d, c in zip(_tuple(state), _tuple(slope), hs)])


@register_integrator("euler")
def euler(model, state, input, ctx, dt: float):
    """Explicit Euler: ``y + F(y) * dt`` (flyvis's operation order). Without autograd, a
    model's own ``euler_step`` (same numbers, fewer passes; None where it does not apply) is
    used when it has one."""
    fast = getattr(model, "euler_step", None)
    if fast is not None and not torch.is_grad_enabled():
        out = fast(state, input, ctx, dt)
        if out is not None:
            return out
    state = _axpy(state, model.derivative(state, input, ctx, dt), dt)
    return model.after_step(state, ctx, dt)


@register_integrator("exponential_euler")
def exponential_euler(model, state, input, ctx, dt: float):
    r"""Exponential Euler: ``y + F(y) * (1 - exp(-lambda dt)) / lambda`` (``lambda`` from
    ``model.decay``; a zero rate gives the Euler step).

    Raises:
        ValueError: the model does not define ``decay``.
    """
    rates = model.decay(state, ctx, dt)
    if rates is None:
        raise ValueError(f"method='exponential_euler' needs {type(model).__name__}.decay "
                         "(the linear rate of each state tensor)")
    factors = []
    for rate in _tuple(rates):
        if rate is None:
            factors.append(None)
            continue
        rate = torch.as_tensor(rate, dtype=ctx.bias.dtype, device=ctx.bias.device)
        safe = torch.where(rate > 0, rate, torch.ones_like(rate))
        factors.append(torch.where(rate > 0, -torch.expm1(-safe * dt) / safe,
                                   torch.full_like(rate, dt)))
    slope = model.derivative(state, input, ctx, dt)
    return model.after_step(_axpy(state, slope, factors), ctx, dt)


@register_integrator("rk4")
def rk4(model, state, input, ctx, dt: float):
    """Classical fourth-order Runge-Kutta with the input held over the step."""
    k1 = model.derivative(state, input, ctx, dt)
    k2 = model.derivative(_axpy(state, k1, dt / 2), input, ctx, dt)
    k3 = model.derivative(_axpy(state, k2, dt / 2), input, ctx, dt)
    k4 = model.derivative(_axpy(state, k3, dt), input, ctx, dt)
    slope = _like(state, [None if a is None else (a + 2 * b + 2 * c + d) / 6 for a, b, c, d in
                          zip(_tuple(k1), _tuple(k2), _tuple(k3), _tuple(k4))])
    return model.after_step(_axpy(state, slope, dt), ctx, dt)
