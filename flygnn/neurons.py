r"""Neuron models: an initial state and a derivative; integrators (:mod:`flygnn.integrators`)
advance them.

A model (:class:`NeuronModel`, an ``nn.Module``) states what changes and nothing else:

* ``initial_state(ctx, batch_size) -> state``: the state at rest, a ``(B, N)`` tensor or a
  tuple of tensors whose first axis is the batch;
* ``derivative(state, input, ctx, dt) -> d state / dt``: same structure as ``state``, per
  second; ``input`` is the external current ``(B, N_in)`` into ``ctx.input_nodes``
  (``ctx.add_input`` adds it) or None; ``dt`` is the integrator's step, used only for
  flyvis's floor of time constants at the step (:meth:`~flygnn.context.Context.inv_time_const`);
* ``activity(state) -> (B, N)``: what is recorded and read out (default: the first tensor);
* optional: ``decay(state, ctx, dt)``: the linear rate ``lambda`` of each state tensor
  (``d y/dt = -lambda y + ...``, for ``method="exponential_euler"``), and
  ``after_step(state, ctx, dt)``: discrete events after each step (spikes and resets).

Synaptic input is one :class:`~flygnn.synapses.Synapses` layer (``self.synapses(x,
ctx.adjacency)``). ``ctx`` (:class:`~flygnn.context.Context`) carries the network's
parameters on nodes and edges. Graph-sized parameters of a model are made in
``setup(graph)``; register a model with :func:`register_model` (it is then saved and
loaded by name, with :meth:`NeuronModel.config` as its JSON constructor arguments).

States are ``(B, N)`` tensors in node-major memory (strides ``(1, B)``), the layout of the
CSR product; element-wise updates keep it, so no step copies memory.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from flygnn import params
from flygnn.context import Context, node_major
from flygnn.fused import graded_euler_step
from flygnn.sparse import CSRMatmul
from flygnn.synapses import Synapses

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "Graded",
    "NeuronModel",
    "SynapticFilter",
    "broadcast_state",
    "make_model",
    "node_major",
    "register_model",
]

State = torch.Tensor | tuple
ACTIVATIONS = {"relu": F.relu, "elu": F.elu, "softplus": F.softplus, "tanh": torch.tanh,
               "sigmoid": torch.sigmoid, "leakyrelu": F.leaky_relu}
MODELS: dict[str, type] = {}


def register_model(cls: type) -> type:
    """Class decorator: make a :class:`NeuronModel` loadable by its ``name``."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__name__}: set a non-empty class attribute 'name' to register it")
    MODELS[cls.name] = cls
    return cls


def make_model(name: str, kwargs: dict | None = None) -> NeuronModel:
    """Instantiate a registered model by name (used when loading checkpoints)."""
    if name not in MODELS:
        raise ValueError(f"unknown dynamics {name!r}; registered: {sorted(MODELS)} "
                         "(register yours with flygnn.neurons.register_model or pass dynamics=)")
    return MODELS[name](**(kwargs or {}))


def broadcast_state(state: State, batch_size: int) -> State:
    """Broadcast a state of batch size 1 (or ``batch_size``) to ``batch_size``, node-major.

    Raises:
        ValueError: a tensor that is not 2-D or whose batch is neither 1 nor ``batch_size``.
    """
    if isinstance(state, (tuple, list)):
        return tuple(broadcast_state(s, batch_size) for s in state)
    if not isinstance(state, torch.Tensor) or state.dim() != 2:
        raise ValueError(f"initial_state: expected (batch, nodes) tensors, got "
                         f"{getattr(state, 'shape', type(state).__name__)}")
    if state.shape[0] not in (1, batch_size):
        raise ValueError(f"initial_state: batch size {state.shape[0]} does not match the "
                         f"input's {batch_size} (use 1 to broadcast)")
    if state.shape[0] == batch_size and state.stride(0) == 1:
        return state
    return node_major(state, batch_size)


class NeuronModel(nn.Module):
    """Base class of neuron models (see the module docstring for the contract).

    Args:
        activation: the synaptic transfer function ``f`` (``relu``, ``elu``, ``softplus``,
            ``tanh``, ``sigmoid``, ``leakyrelu``), available as ``self.f``.

    Attributes:
        synapses: the :class:`~flygnn.synapses.Synapses` layer.
    """

    name: ClassVar[str] = ""

    def __init__(self, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: {activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.activation = activation
        self.f = ACTIVATIONS[activation]
        self.synapses = Synapses()

    def config(self) -> dict:
        """JSON-able constructor arguments (saved beside checkpoints)."""
        return {"activation": self.activation}

    def setup(self, graph) -> None:
        """Create graph-sized parameters; called once by the network. Default: none."""

    def initial_state(self, ctx: Context, batch_size: int) -> State:
        """The state at rest (``(B, N)`` tensors, e.g. ``ctx.rest(batch_size)``)."""
        raise NotImplementedError(f"{type(self).__name__}: implement "
                                  "initial_state(ctx, batch_size)")

    def derivative(self, state: State, input: torch.Tensor | None, ctx: Context,
                   dt: float) -> State:
        """``d state / dt`` (per second), same structure as ``state``."""
        raise NotImplementedError(
            f"{type(self).__name__}: implement derivative(state, input, ctx, dt) -> d state / dt "
            "(it replaces the step(state, input, ctx, dt) of flygnn.dynamics.Dynamics; the "
            "integrator is chosen by simulate(..., method=); see tutorials/07)")

    def decay(self, state: State, ctx: Context, dt: float):
        """Linear decay rate (1/s) of each state tensor, broadcastable to it, or None."""
        return

    def after_step(self, state: State, ctx: Context, dt: float) -> State:
        """Discrete events after each integration step (default: none)."""
        return state

    def activity(self, state: State) -> torch.Tensor:
        """``(B, N)`` activity of a state (default: the state, or its first tensor)."""
        return state if isinstance(state, torch.Tensor) else state[0]

    def forward(self, state: State, input: torch.Tensor | None, ctx: Context, dt: float) -> State:
        """The derivative (a model called like a layer)."""
        return self.derivative(state, input, ctx, dt)


@register_model
class Graded(NeuronModel):
    r"""Passive point neurons with instantaneous graded synapses (flyvis ``PPNeuronIGRSynapses``).

    .. math::
        \tau_i \frac{dV_i}{dt} = -V_i + b_i + \sum_{e: t(e)=i} w_e f(V_{s(e)}) + x_i(t)

    with :math:`f` = ReLU by default, :math:`V` and :math:`b` in arbitrary voltage units and
    :math:`\tau` in seconds, floored at the step (:math:`\tau_{eff} = \max(\tau, dt)`). The
    derivative is computed in flyvis's float32 order ``(1/tau_eff) * (((-v + b) + syn) + x)``,
    so ``method="euler"`` reproduces flyvis bit for bit. The state is ``V``.

    Args:
        activation: synaptic transfer function name.
        fused: aggregate with the fused CSR operator (default) or with PyG gather/scatter
            over ``(edge_index, edge_weight)`` (same numbers; per-edge weight gradients).

    Shapes:
        state ``(B, N)``; input ``(B, N_in)``.
    """

    name = "graded"

    def __init__(self, activation: str = "relu", fused: bool = True):
        super().__init__(activation)
        self.fused = fused

    def config(self) -> dict:
        return {"activation": self.activation, "fused": self.fused}

    def initial_state(self, ctx, batch_size):
        return ctx.rest(batch_size)

    def derivative(self, v, input, ctx, dt):
        syn = self.synapses(self.f(v), ctx.adjacency if self.fused else ctx.edges)
        return ctx.add_input((ctx.bias - v) + syn, input) * ctx.inv_time_const(dt)

    def decay(self, state, ctx, dt):
        return ctx.inv_time_const(dt)

    def euler_step(self, v, input, ctx, dt):
        """The fused no-grad Euler step (:func:`flygnn.fused.graded_euler_step`), bit for bit
        the Euler step of :meth:`derivative`; None for subclasses that change the equation."""
        if not self.fused or type(self).derivative is not Graded.derivative:
            return None
        return graded_euler_step(v, self.f, input, ctx, dt)


@register_model
class SynapticFilter(NeuronModel):
    r"""Graded neurons whose synaptic currents are low-pass filtered per type pair.

    Each neuron ``i`` carries one synaptic current :math:`I_{p,i}` per incoming type pair
    ``p`` (about 420k currents at extent 15), filtered with a trainable time constant
    :math:`\tau_p` (s) per pair:

    .. math::
        \tau_p \frac{dI_{p,i}}{dt} &= -I_{p,i} + \sum_{e \in p,\, t(e)=i} c_e f(V_{s(e)}) \\
        \tau_i \frac{dV_i}{dt} &= -V_i + b_i + \sum_p s_p I_{p,i} + x_i(t)

    with :math:`c_e = \mathrm{sign}_p \cdot \mathrm{count}_{o(e)}` and strength :math:`s_p`,
    so :math:`s_p I_{p,i}` relaxes to the graded model's synaptic input. Time constants are
    floored at ``dt`` (:math:`\tau_p \le dt` gives the graded model delayed by one Euler
    step). The state is ``(V, I)`` with ``I`` of shape ``(B, R)`` (rows = (pair, target),
    pair-major); at rest ``V = b`` and ``I = M f(b)`` (its fixed point).

    Args:
        syn_time_const: initial :math:`\tau_p` in seconds for every pair.
        activation: synaptic transfer function name.

    Shapes:
        state ``((B, N), (B, R))``; input ``(B, N_in)``.
    """

    name = "synaptic_filter"

    def __init__(self, syn_time_const: float = 0.01, activation: str = "relu"):
        super().__init__(activation)
        if not syn_time_const > 0:
            raise ValueError(f"syn_time_const must be positive, got {syn_time_const}")
        self.init_syn_time_const = float(syn_time_const)
        self.syn_time_const = None

    def config(self) -> dict:
        return {"syn_time_const": self.init_syn_time_const, "activation": self.activation}

    def setup(self, graph) -> None:
        self.syn_time_const = nn.Parameter(
            torch.full((len(graph.pairs),), self.init_syn_time_const, dtype=torch.float32))

    def _rows_to_nodes(self, ctx) -> CSRMatmul:
        """``(N, R)`` sum over the rows of each target node (graph structure, cached)."""
        grp = ctx.adjacency.structure.by_target
        dtype, device = ctx.bias.dtype, ctx.bias.device

        def make():
            ones = torch.ones(grp.num_rows, dtype=dtype, device=device)
            rows = torch.arange(grp.num_rows, device=device)
            return CSRMatmul(grp.row_node, rows, ones, (ctx.num_nodes, grp.num_rows))

        return ctx.cache.get(("rows_to_nodes", str(device), dtype), (), make)

    def _inv_syn_tau(self, ctx, dt) -> torch.Tensor:
        """``(R,)`` ``1 / max(tau_p, dt)`` per row (once per context and ``dt``)."""
        def make():
            tau = params.effective_time_const(self.syn_time_const.to(ctx.bias.dtype), dt)
            return (1 / tau)[ctx.adjacency.structure.by_target.row_pair]
        return ctx.once(("inv_syn_tau", dt), make)

    def _target_current(self, v, ctx):
        return ctx.adjacency.grouped_matmul(self.f(v))  # (B, R): sum_{e in p -> i} c_e f(v_j)

    def initial_state(self, ctx, batch_size):
        v = ctx.rest(batch_size)
        return v, self._target_current(v, ctx)

    def derivative(self, state, input, ctx, dt):
        v, current = state
        row_pair = ctx.adjacency.structure.by_target.row_pair
        syn = self.synapses(current * ctx.strength[row_pair], self._rows_to_nodes(ctx))
        dv = ctx.add_input((ctx.bias - v) + syn, input) * ctx.inv_time_const(dt)
        d_current = (self._target_current(v, ctx) - current) * self._inv_syn_tau(ctx, dt)
        return dv, d_current

    def decay(self, state, ctx, dt):
        return ctx.inv_time_const(dt), self._inv_syn_tau(ctx, dt)
