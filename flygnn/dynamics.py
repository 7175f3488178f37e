r"""Neuron dynamics as PyG ``MessagePassing`` layers behind one small contract.

A dynamics object turns the network's parameters into a time step. The contract
(:class:`Dynamics`):

* ``prepare(net) -> Context`` once per forward pass: the per-node resting potentials and
  time constants, the per-pair strengths, the per-edge coefficients and the fused sparse
  adjacency (:class:`Context`). The default asks the network (``net.context()``);
  override to add your own tensors to ``ctx.extras``.
* ``initial_state(ctx, batch_size) -> state``: the state "at rest" (a ``(B, N)`` tensor
  or a tuple of tensors whose first axis is the batch).
* ``step(state, input, ctx, dt) -> state``: one explicit Euler step of ``dt`` seconds;
  ``input`` is the external current ``(B, N_in)`` into the nodes ``ctx.input_nodes``
  (``ctx.add_input`` adds it), or ``None``.
* ``activity(state) -> (B, N)``: what is recorded and read out.

Register a subclass with :func:`register_dynamics` (it then saves and loads by name) and
give it JSON-able constructor arguments via :meth:`Dynamics.config`. Graph-sized
parameters of the dynamics itself are created in :meth:`Dynamics.setup`.

States are ``(B, N)`` tensors laid out node-major in memory (strides ``(1, B)``), the
layout of the CSR product; element-wise ops keep it, so no step copies memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing

from flygnn import params
from flygnn.fused import graded_euler_step
from flygnn.sparse import BoundAdjacency, CSRMatmul

__all__ = [
    "Context", "Dynamics", "GradedDynamics", "SynapticFilterDynamics", "DYNAMICS",
    "register_dynamics", "make_dynamics", "broadcast_state",
]

State = Union[torch.Tensor, tuple]
ACTIVATIONS = {"relu": F.relu, "elu": F.elu, "softplus": F.softplus, "tanh": torch.tanh,
               "sigmoid": torch.sigmoid, "leakyrelu": F.leaky_relu}
DYNAMICS: dict[str, type] = {}


def register_dynamics(cls: type) -> type:
    """Class decorator: make a :class:`Dynamics` loadable by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: set a non-empty class attribute 'name' to register it")
    DYNAMICS[cls.name] = cls
    return cls


def make_dynamics(name: str, kwargs: dict | None = None) -> Dynamics:
    """Instantiate a registered dynamics by name (used when loading checkpoints)."""
    if name not in DYNAMICS:
        raise ValueError(f"unknown dynamics {name!r}; registered: {sorted(DYNAMICS)} "
                         "(register yours with flygnn.dynamics.register_dynamics or pass dynamics=)")
    return DYNAMICS[name](**(kwargs or {}))


def node_major(x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Copy a ``(b, K)`` tensor (b = 1 broadcasts) into node-major memory ``(B, K)``."""
    batch_size = x.shape[0] if batch_size is None else batch_size
    out = x.new_empty(x.shape[1], batch_size).transpose(0, 1)
    return out.copy_(x.expand(batch_size, -1))


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


@dataclass
class Context:
    """Everything a dynamics needs for one forward pass (tensors on the network's device).

    Attributes:
        graph: the :class:`~flygnn.flat.FlatGraph`.
        bias: ``(N,)`` resting potential of every node.
        time_const: ``(N,)`` membrane time constant (s) of every node, not yet floored.
        strength: ``(P,)`` non-negative synapse strength per type pair.
        coeff: ``(E,)`` ``sign * count`` per edge (edge order); ``w_e = coeff_e * strength_p(e)``.
        adjacency: the fused CSR operator with these weights (``adjacency.matmul(x)``).
        source, target: ``(E,)`` edge endpoints (``edge_index`` stacks them on demand, for
            gather/scatter message passing).
        pair_index: ``(E,)`` type pair of every edge.
        input_nodes: nodes receiving external input (a ``slice`` or an index tensor).
        extras: free room for a dynamics' own per-forward tensors.
    """

    graph: Any
    bias: torch.Tensor
    time_const: torch.Tensor
    strength: torch.Tensor
    coeff: torch.Tensor
    adjacency: BoundAdjacency
    source: torch.Tensor
    target: torch.Tensor
    pair_index: torch.Tensor
    input_nodes: slice | torch.Tensor
    extras: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_nodes(self) -> int:
        return int(self.bias.shape[0])

    @property
    def edge_index(self) -> torch.Tensor:
        """``(2, E)`` source and target of every edge (made on demand)."""
        if "edge_index" not in self._cache:
            self._cache["edge_index"] = torch.stack([self.source, self.target])
        return self._cache["edge_index"]

    def inv_time_const(self, dt: float) -> torch.Tensor:
        r""":math:`1 / \max(\tau_i, dt)` per node (computed once per ``dt``). Shapes: ``(N,)``."""
        key = ("inv_tau", dt)
        if key not in self._cache:
            self._cache[key] = 1 / params.effective_time_const(self.time_const, dt)
        return self._cache[key]

    def edge_weight(self) -> torch.Tensor:
        """``(E,)`` per-edge weights ``coeff * strength[pair]`` (with autograd; made on demand)."""
        if "edge_weight" not in self._cache:
            self._cache["edge_weight"] = self.coeff * self.strength[self.pair_index]
        return self._cache["edge_weight"]

    def add_input(self, drive: torch.Tensor, input: torch.Tensor | None) -> torch.Tensor:
        """``drive[:, input_nodes] += input`` (in place) and return ``drive``."""
        if input is None:
            return drive
        if isinstance(self.input_nodes, slice):
            drive[:, self.input_nodes] += input
            return drive
        return drive.index_add_(1, self.input_nodes, input)


class Dynamics(MessagePassing):
    """Base class of the dynamics contract (see the module docstring).

    Subclasses implement :meth:`initial_state` and :meth:`step`, and, to aggregate over
    synapses, either use ``ctx.adjacency`` (fused CSR path, in :meth:`message_and_aggregate`)
    or ``self.propagate(ctx.edge_index, x=..., edge_weight=ctx.edge_weight())`` with
    node-first ``(N, B)`` features (gather/scatter path, :meth:`message`).
    """

    name: ClassVar[str] = ""

    def __init__(self, activation: str = "relu"):
        super().__init__(aggr="sum", node_dim=0)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: {activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.activation = activation
        self.f = ACTIVATIONS[activation]

    def config(self) -> dict:
        """JSON-able constructor arguments (saved beside checkpoints)."""
        return {"activation": self.activation}

    def setup(self, graph) -> None:
        """Create graph-sized parameters; called once by the network. Default: none."""

    def prepare(self, net) -> Context:
        """Per-forward context: the network's parameters broadcast to nodes and edges."""
        return net.context()

    def initial_state(self, ctx: Context, batch_size: int) -> State:
        raise NotImplementedError

    def step(self, state: State, input: torch.Tensor | None, ctx: Context, dt: float) -> State:
        raise NotImplementedError

    def activity(self, state: State) -> torch.Tensor:
        """``(B, N)`` activity of a state (default: the state, or its first tensor)."""
        return state if isinstance(state, torch.Tensor) else state[0]

    def forward(self, state: State, input: torch.Tensor | None, ctx: Context, dt: float) -> State:
        return self.step(state, input, ctx, dt)

    # message passing: w_e * f(v_j), summed over incoming edges
    def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        return edge_weight.unsqueeze(-1) * x_j

    def message_and_aggregate(self, adj_t: BoundAdjacency, x: torch.Tensor) -> torch.Tensor:
        """Fused path: one CSR x dense product, ``(B, N) -> (B, N)``."""
        return adj_t.matmul(x)


@register_dynamics
class GradedDynamics(Dynamics):
    r"""Passive point neurons with instantaneous graded synapses (flyvis ``PPNeuronIGRSynapses``).

    .. math::
        \tau_i \frac{dV_i}{dt} = -V_i + b_i + \sum_{e: t(e)=i} w_e f(V_{s(e)}) + x_i(t)

    with :math:`f` = ReLU by default, :math:`V` and :math:`b` in arbitrary voltage units,
    :math:`\tau` in seconds, integrated by explicit Euler with :math:`\tau` floored at
    :math:`dt`, in flyvis's float32 operation order
    ``v + ((1/tau_eff) * (((-v + b) + syn) + x)) * dt``. The state is ``V``.

    Args:
        activation: synaptic transfer function name (``relu`` ...).
        fused: use the fused CSR aggregation (default) or PyG gather/scatter ``propagate``.

    Shapes:
        state ``(B, N)``; input ``(B, N_in)``; returns ``(B, N)``.
    """

    name = "graded"

    def __init__(self, activation: str = "relu", fused: bool = True):
        super().__init__(activation)
        self.fused = fused

    def config(self) -> dict:
        return {"activation": self.activation, "fused": self.fused}

    def synaptic_input(self, v: torch.Tensor, ctx: Context) -> torch.Tensor:
        """``(B, N)``: sum over incoming edges of ``w_e f(v_source)``."""
        x = self.f(v)
        if self.fused:
            return self.message_and_aggregate(ctx.adjacency, x)
        return self.propagate(ctx.edge_index, x=x.transpose(0, 1),
                              edge_weight=ctx.edge_weight()).transpose(0, 1)

    def initial_state(self, ctx: Context, batch_size: int) -> torch.Tensor:
        return node_major(ctx.bias.unsqueeze(0), batch_size)

    def step(self, state, input, ctx, dt):
        v = state
        if self.fused and not torch.is_grad_enabled() \
                and type(self).synaptic_input is GradedDynamics.synaptic_input:
            return graded_euler_step(v, self.f, input, ctx, dt)  # same numbers, fewer passes
        drive = ctx.add_input((ctx.bias - v) + self.synaptic_input(v, ctx), input)
        return v + (drive * ctx.inv_time_const(dt)) * dt


@register_dynamics
class SynapticFilterDynamics(Dynamics):
    r"""Graded neurons whose synaptic currents are low-pass filtered per type pair.

    Each neuron ``i`` carries one synaptic current :math:`I_{p,i}` per incoming type pair
    ``p`` (about 420k currents at extent 15), filtered with a trainable time constant
    :math:`\tau_p` (s) per pair:

    .. math::
        \tau_p \frac{dI_{p,i}}{dt} &= -I_{p,i} + \sum_{e \in p,\, t(e)=i} c_e f(V_{s(e)}) \\
        \tau_i \frac{dV_i}{dt} &= -V_i + b_i + \sum_p s_p I_{p,i} + x_i(t)

    with :math:`c_e = \mathrm{sign}_p \cdot \mathrm{count}_{o(e)}` and strength :math:`s_p`,
    so :math:`s_p I_{p,i}` relaxes to the graded model's synaptic input. Both equations take
    one explicit Euler step from the same old state, time constants floored at ``dt``
    (:math:`\tau_p \le dt` gives the graded model delayed by one step). The state is
    ``(V, I)`` with ``I`` of shape ``(B, R)`` (rows = (pair, target), pair-major); at rest
    ``V = b`` and ``I = M f(b)`` (its fixed point).

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

    def prepare(self, net) -> Context:
        ctx = net.context()
        grp = ctx.adjacency.structure.by_target
        key = ("rows_to_nodes", id(grp), ctx.bias.dtype)
        ops = net._derived.get(key)
        if ops is None:  # fixed structure: build once per network, device and dtype
            ones = torch.ones(grp.num_rows, dtype=ctx.bias.dtype, device=ctx.bias.device)
            rows = torch.arange(grp.num_rows, device=ones.device)
            ops = net._derived[key] = CSRMatmul(grp.row_node, rows, ones,
                                                (ctx.num_nodes, grp.num_rows))
        ctx.extras.update(rows_to_nodes=ops, row_pair=grp.row_pair,
                          syn_time_const=self.syn_time_const.to(ctx.bias.dtype))
        return ctx

    def _target_current(self, v, ctx):
        return ctx.adjacency.grouped_matmul(self.f(v))  # (B, R): sum_{e in p -> i} c_e f(v_j)

    def initial_state(self, ctx, batch_size):
        v = node_major(ctx.bias.unsqueeze(0), batch_size)
        return v, self._target_current(v, ctx)

    def step(self, state, input, ctx, dt):
        v, current = state
        row_pair = ctx.extras["row_pair"]
        scaled = current * ctx.strength[row_pair]
        syn = ctx.extras["rows_to_nodes"].matmul(scaled)
        drive = ctx.add_input((ctx.bias - v) + syn, input)
        key = ("inv_syn_tau", dt)
        if key not in ctx._cache:
            tau = params.effective_time_const(ctx.extras["syn_time_const"], dt)
            ctx._cache[key] = (1 / tau)[row_pair]
        d_current = (self._target_current(v, ctx) - current) * ctx._cache[key]
        return v + (drive * ctx.inv_time_const(dt)) * dt, current + d_current * dt
