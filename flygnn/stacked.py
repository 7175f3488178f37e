r"""Several networks that share one graph, simulated in one pass (structure shared, weights
stacked).

An ensemble of trained models (the paper evaluates 50 per stimulus) differs only in its
parameters: the graph, and with it the sparsity structure of every model's weight matrix, is
the same. :class:`StackedNetworks` runs ``K`` such networks as one batch:

* the state is one ``(K, B, N)`` tensor, model-major in memory (``(K, N, B)``: every model's
  block is the node-major layout of a single network);
* the synaptic sum of all models is one CSR product with the block-diagonal matrix
  ``diag(W_1, ..., W_K)``, whose index arrays are the shared graph's tiled once per structure
  and whose values are the models' stacked weights (refreshed once per forward pass);
* every element-wise pass of the Euler step covers all models at once, with per-model
  resting potentials and time constants expanded into the same layout.

Each model's rows keep the single network's summation order, so the results equal separate
runs (to the rounding of the sparse kernel's threads; tested to 1e-6). The sparse work is that
of ``K`` networks (every model reads its own weights); what one pass saves is the per-step
overhead of ``K`` loops and kernel launches, which dominates on a GPU and at small batches.
Only graded dynamics
(:class:`~flygnn.dynamics.Graded`, the flyvis model) are stacked, without gradients;
anything else is simulated model by model with the same call (:func:`simulate_stacked`).

Use it through :func:`flygnn.simulate.simulate` (a list of networks, an
:class:`~flygnn.analysis.ensembles.Ensemble` or a :class:`StackedNetworks`), or the analysis
runners, which pass their ensemble here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from flygnn import threads
from flygnn._checks import check_dt, check_frames, record_index
from flygnn.neurons import Graded
from flygnn.params import effective_time_const
from flygnn.sparse import _sparse_csr

__all__ = ["StackedNetworks", "as_stack", "is_stack", "simulate_stacked", "steady_state_stacked"]


def _members(nets) -> list:
    if isinstance(nets, StackedNetworks):
        return list(nets.networks)
    if hasattr(nets, "networks") and not isinstance(nets, torch.nn.Module):
        return list(nets.networks)  # an analysis Ensemble
    return list(nets)


def is_stack(obj) -> bool:
    """Whether ``obj`` is several networks (a list/tuple, an Ensemble or a StackedNetworks)."""
    if isinstance(obj, (StackedNetworks, list, tuple)):
        return True
    return hasattr(obj, "networks") and not isinstance(obj, torch.nn.Module)


def _same_graph(a, b) -> bool:
    if a.graph is b.graph:
        return True
    return a.num_nodes == b.num_nodes and all(
        torch.equal(getattr(a, k), getattr(b, k))
        for k in ("source", "target", "pair_index", "offset_index", "node_type"))


def _stackable(nets: Sequence) -> str | None:
    """None if ``nets`` can share one pass, else the reason."""
    first = nets[0]
    for i, net in enumerate(nets):
        dyn = net.dynamics
        if type(dyn) is not Graded or not dyn.fused:
            return f"network {i}: dynamics {type(dyn).__name__} (only fused Graded stack)"
        if dyn.activation != first.dynamics.activation:
            return f"network {i}: activation {dyn.activation!r} != {first.dynamics.activation!r}"
        if net.bias.dtype != first.bias.dtype or net.bias.device != first.bias.device:
            return f"network {i}: dtype/device differ from network 0"
        if net is not first and not _same_graph(net, first):
            return f"network {i}: its graph differs from network 0's"
    return None


class _StackContext:
    """Per-forward tensors of a stack: bias ``(K, N)``, time constants, the block matrix."""

    def __init__(self, stack: StackedNetworks):
        nets = stack.networks
        ctxs = [net.prepare() for net in nets]
        self.contexts = ctxs
        self.bias = torch.stack([c.bias for c in ctxs])  # (K, N)
        self.time_const = torch.stack([c.time_const for c in ctxs])
        self.input_nodes = ctxs[0].input_nodes
        crow, col = stack._structure(ctxs[0].adjacency)
        values = torch.cat([c.adjacency.matrix.values() for c in ctxs])
        k, n = len(nets), stack.num_nodes
        self.matrix = _sparse_csr(crow, col, values, (k * n, k * n))
        self._cache: dict = {}

    def rows(self, name, make, batch: int) -> torch.Tensor:
        """A ``(K, N)`` tensor expanded to the state layout ``(K, B, N)`` (memory ``(K, N, B)``)."""
        key = (name, batch)
        if key not in self._cache:
            vec = make()
            out = vec.new_empty(vec.shape[0], vec.shape[1], batch)
            out.copy_(vec.unsqueeze(2).expand(-1, -1, batch))
            self._cache[key] = out.permute(0, 2, 1)
        return self._cache[key]

    def addmm(self, base: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``base + diag(W_k) x`` for ``(K, B, N)`` tensors in the state layout."""
        k, b, n = x.shape
        out = _matrix(base).addmm_(self.matrix, _matrix(x))
        return out.view(k, n, b).permute(0, 2, 1)

    def add_input(self, drive: torch.Tensor, current: torch.Tensor | None) -> torch.Tensor:
        if current is None:
            return drive
        if isinstance(self.input_nodes, slice):
            drive[:, :, self.input_nodes] += current
            return drive
        return drive.index_add_(2, self.input_nodes, current.expand(drive.shape[0], -1, -1))


def _blocks(x: torch.Tensor) -> torch.Tensor:
    """``(K, B, N)`` -> contiguous ``(K, N, B)`` (free in the state layout)."""
    return x.permute(0, 2, 1).contiguous()


def _matrix(x: torch.Tensor) -> torch.Tensor:
    """``(K, B, N)`` -> ``(K * N, B)`` with the standard strides ``(B, 1)`` (also for B = 1)."""
    k, b, n = x.shape
    y = _blocks(x).view(k * n, b)
    return y if y.stride() == (b, 1) else y.as_strided((k * n, b), (b, 1))


def _state_layout(x: torch.Tensor) -> torch.Tensor:
    """A ``(K, B, N)`` tensor in the state layout (copied unless it already is)."""
    return _blocks(x).permute(0, 2, 1)


class StackedNetworks:
    """``K`` networks with one graph, simulated as one batch (see the module docstring).

    Args:
        networks: :class:`~flygnn.network.Network` objects, or an
            :class:`~flygnn.analysis.ensembles.Ensemble`.

    Attributes:
        networks: the members; ``num_models``, ``num_nodes``, ``n_hexals``, ``graph`` as for
        one network. ``reason``: None when the members run in one pass, else why they run
        one by one (e.g. another dynamics).

    Raises:
        ValueError: no networks, or members whose graphs differ in size.
    """

    def __init__(self, networks):
        nets = _members(networks)
        if not nets:
            raise ValueError("networks is empty; pass a list of Networks or an Ensemble")
        if not all(isinstance(n, torch.nn.Module) and hasattr(n, "graph") for n in nets):
            raise ValueError("networks must be flygnn Network modules")
        sizes = {(n.num_nodes, n.n_hexals) for n in nets}
        if len(sizes) != 1:
            raise ValueError(f"networks: members of different graph sizes {sorted(sizes)}")
        self.networks = nets
        first = nets[0]
        self.graph, self.num_nodes, self.n_hexals = first.graph, first.num_nodes, first.n_hexals
        self.reason = _stackable(nets)
        self._block = None

    @property
    def num_models(self) -> int:
        return len(self.networks)

    @property
    def bias(self) -> torch.Tensor:  # dtype and device of the stack
        return self.networks[0].bias

    def _structure(self, adjacency) -> tuple[torch.Tensor, torch.Tensor]:
        """Block-diagonal CSR index arrays (int32), built once per stack and structure."""
        s = adjacency.structure
        if self._block is None or self._block[0] is not s:
            k, n, nnz = self.num_models, s.num_nodes, s.col.numel()
            if k * nnz >= 2**31:
                raise ValueError(f"{k} models x {nnz} edges exceed the int32 CSR index range")
            shift = torch.arange(k, dtype=torch.int32, device=s.col.device)
            crow = torch.cat([(s.crow[:-1].unsqueeze(0) + shift.unsqueeze(1) * nnz).reshape(-1),
                              s.crow.new_tensor([k * nnz])])
            col = (s.col.unsqueeze(0) + shift.unsqueeze(1) * n).reshape(-1)
            self._block = (s, crow, col)
        return self._block[1], self._block[2]

    def prepare(self) -> _StackContext:
        """The per-forward context of all members (once per :func:`simulate_stacked` call)."""
        return _StackContext(self)

    def initial_state(self, ctx: _StackContext, batch_size: int) -> torch.Tensor:
        """Resting state ``v = bias`` of every member: ``(K, B, N)``."""
        return ctx.rows("bias", lambda: ctx.bias, batch_size).clone()

    def step(self, v: torch.Tensor, current: torch.Tensor | None, ctx: _StackContext,
             dt: float) -> torch.Tensor:
        """One Euler step of all members (flyvis's operation order, as one network's step)."""
        batch = v.shape[1]
        bias = ctx.rows("bias", lambda: ctx.bias, batch)
        inv_tau = ctx.rows(("inv_tau", dt),
                           lambda: 1 / effective_time_const(ctx.time_const, dt), batch)
        f = self.networks[0].dynamics.f
        drive = ctx.add_input(ctx.addmm(bias - v, f(v)), current)
        return drive.mul_(inv_tau).mul_(dt).add_(v)


def as_stack(nets) -> StackedNetworks:
    """``nets`` as a :class:`StackedNetworks` (returned unchanged if it is one)."""
    return nets if isinstance(nets, StackedNetworks) else StackedNetworks(nets)


def _broadcast(state: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    if not isinstance(state, torch.Tensor) or state.dim() != 3 or state.shape[0] != k \
            or state.shape[1] not in (1, batch):
        raise ValueError(f"initial_state: expected a ({k}, 1 or {batch}, N) tensor, got "
                         f"{tuple(getattr(state, 'shape', ()))}")
    return _state_layout(state.expand(k, batch, -1))


def _integrate(stack, ctx, inputs, dt, state, index, out) -> torch.Tensor:
    with threads.num_threads() as loop:
        for t, frame in enumerate(inputs):
            loop.tick()
            current = None if frame is None else stack.networks[0].frame_input(frame)
            state = stack.step(state, current, ctx, dt)
            if out is not None:
                out[:, :, t].copy_(state if index is None else state.index_select(2, index))
    return state


@threads.under_policy
def steady_state_stacked(nets, t_pre: float | None, dt: float, batch_size: int = 1,
                         value: float = 0.5, state: torch.Tensor | None = None,
                         ctx: _StackContext | None = None) -> torch.Tensor:
    """:func:`flygnn.simulate.steady_state` of every member: ``(K, batch_size, N)``.

    Raises:
        ValueError: the members cannot run in one pass (``StackedNetworks.reason``).
    """
    stack = as_stack(nets)
    dt = check_dt(dt)
    if stack.reason is not None:
        raise ValueError(f"these networks cannot run in one pass: {stack.reason}")
    with torch.no_grad():
        ctx = ctx if ctx is not None else stack.prepare()
        k = stack.num_models
        state = (stack.initial_state(ctx, batch_size) if state is None
                 else _broadcast(state, k, batch_size))
        steps = int(t_pre / dt) if t_pre is not None and t_pre > 0 else 0
        frame = stack.bias.new_full((batch_size, stack.n_hexals), value)
        return _integrate(stack, ctx, [frame] * steps, dt, state, None, None)


@threads.under_policy
def simulate_stacked(nets, movie, dt: float, t_pre: float = 1.0, initial_state=None,
                     record=None, return_state: bool = False):
    """:func:`flygnn.simulate.simulate` of every member in one pass (no gradients; Euler).

    ``flygnn.simulate(nets, ...)`` calls this when the members can share one pass and runs
    them model by model otherwise.

    Args:
        nets: a list of networks, an Ensemble or a :class:`StackedNetworks`.
        movie: ``(B, T, n_hexals)``, the same for every member.
        dt, t_pre, record, return_state: as for :func:`~flygnn.simulate.simulate`.
        initial_state: ``(K, B or 1, N)`` (None: each member's grey steady state).

    Returns:
        responses ``(K, B, T, R)`` (and the final state ``(K, B, N)`` with ``return_state``).
    """
    stack = as_stack(nets)
    if stack.reason is not None:
        raise ValueError(f"these networks cannot run in one pass: {stack.reason}")
    dt = check_dt(dt)
    movie = check_frames(movie, stack.n_hexals, "movie", 3, stack.bias)
    k, (batch, steps) = stack.num_models, movie.shape[:2]
    index = record_index(stack.networks[0], record)
    if index is not None:
        index = index.to(movie.device)
    with torch.no_grad():
        ctx = stack.prepare()
        if initial_state is None:
            state = steady_state_stacked(stack, t_pre, dt, batch, ctx=ctx)
        else:
            state = _broadcast(initial_state, k, batch)
        size = stack.num_nodes if index is None else len(index)
        responses = movie.new_empty(k, batch, steps, size)
        state = _integrate(stack, ctx, movie.unbind(1), dt, state, index, responses)
    return (responses, state) if return_state else responses
