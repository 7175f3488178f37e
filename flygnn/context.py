r"""What a neuron model reads in one forward pass, and the one cache that owns derived tensors.

:class:`DerivedCache` is the only cache of a :class:`~flygnn.network.Network`
(``net.cache``). Everything that is derived from the graph or the parameters and worth
keeping lives there, under one **invalidation rule**: an entry is reused while every
tensor it was derived from ("sources") still has the same version counter, storage,
dtype and device; otherwise it is rebuilt on the next request. Entries with no sources
depend only on the (immutable) graph and on the device and dtype named in their key: the
CSR structure of the adjacency, the row operators of the synaptic-filter model.

What lives there (key: sources):

* ``("adjacency", device)``: the :class:`~flygnn.sparse.PairAdjacency` CSR structure: none;
* ``("coeff", dtype)``: the per-edge coefficients ``sign * count``: ``sign``, ``syn_count``;
* ``"context"``: the whole :class:`Context`, only outside autograd (``torch.no_grad()``):
  every parameter and buffer of the network and of its neuron model;
* models' own structures (``ctx.cache.get(...)``).

A :class:`Context` is made for one forward pass and memoises per-``dt`` values
(:meth:`Context.once`) for as long as it lives; a cached context is dropped with its
entry. Copies of a network (``copy.deepcopy``) share the source-free (graph) entries and
rebuild the rest. No method here changes a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from flygnn import params
from flygnn.sparse import BoundAdjacency

__all__ = ["Context", "DerivedCache", "node_major"]


def node_major(x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Copy a ``(b, K)`` tensor (b = 1 broadcasts) into node-major memory ``(B, K)``
    (strides ``(1, B)``: the layout the fused CSR product reads and writes)."""
    batch_size = x.shape[0] if batch_size is None else batch_size
    out = x.new_empty(x.shape[1], batch_size).transpose(0, 1)
    return out.copy_(x.expand(batch_size, -1))


def _stamp(sources: Sequence[torch.Tensor]) -> tuple:
    return tuple((t._version, t.data_ptr(), t.dtype, str(t.device)) for t in sources)


class DerivedCache:
    """Derived tensors of one network, each rebuilt when one of its sources changes.

    See the module docstring for the rule and the entries. ``copy.deepcopy`` gives a
    cache that shares the source-free entries (functions of the immutable graph).
    """

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[tuple, Any]] = {}

    def get(self, key: Hashable, sources: Sequence[torch.Tensor], make: Callable[[], Any]):
        """The entry ``key``, made by ``make()`` unless cached from the same ``sources``."""
        stamp = _stamp(sources)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = make()
        self._entries[key] = (stamp, value)
        return value

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __deepcopy__(self, memo) -> DerivedCache:
        new = DerivedCache()
        new._entries = {k: v for k, v in self._entries.items() if v[0] == ()}
        return new

    def __getstate__(self) -> dict:  # pickling: derived data is rebuilt on demand
        return {"_entries": {}}


@dataclass
class Context:
    """Everything a neuron model needs for one forward pass (tensors on the network's device).

    Attributes:
        graph: the :class:`~flygnn.flat.FlatGraph`.
        node_type: ``(N,)`` cell type of every node.
        bias: ``(N,)`` resting potential of every node (a.u.).
        time_const: ``(N,)`` membrane time constant (s) of every node, not floored.
        strength: ``(P,)`` synapse strength per type pair, ``max(s, 0)``.
        coeff: ``(E,)`` ``sign * count`` per edge (edge order); ``w_e = coeff_e * strength_p(e)``.
        adjacency: the fused CSR operator with these weights, for
            :class:`~flygnn.synapses.Synapses` (``ctx.edges`` is the same graph as
            ``(edge_index, edge_weight)``).
        source, target, pair_index: ``(E,)`` edge endpoints and type pair.
        input_nodes: nodes receiving external input (a ``slice`` or an index tensor).
        cache: the network's :class:`DerivedCache`.
    """

    graph: Any
    node_type: torch.Tensor
    bias: torch.Tensor
    time_const: torch.Tensor
    strength: torch.Tensor
    coeff: torch.Tensor
    adjacency: BoundAdjacency
    source: torch.Tensor
    target: torch.Tensor
    pair_index: torch.Tensor
    input_nodes: slice | torch.Tensor
    cache: DerivedCache = field(default_factory=DerivedCache, repr=False)
    memo: dict = field(default_factory=dict, repr=False)

    @property
    def num_nodes(self) -> int:
        return int(self.bias.shape[0])

    def once(self, key: Hashable, make: Callable[[], Any]):
        """``make()`` the first time ``key`` is asked for in this context, then the same value."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    @property
    def edge_index(self) -> torch.Tensor:
        """``(2, E)`` source and target of every edge (int64, PyG's convention)."""
        return self.once("edge_index", lambda: torch.stack([self.source, self.target]).long())

    def edge_weight(self) -> torch.Tensor:
        """``(E,)`` per-edge weights ``coeff * strength[pair]`` (with autograd)."""
        return self.once("edge_weight", lambda: self.coeff * self.strength[self.pair_index])

    @property
    def edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(edge_index, edge_weight)``: the gather/scatter form of ``adjacency``."""
        return self.edge_index, self.edge_weight()

    def inv_time_const(self, dt: float) -> torch.Tensor:
        r""":math:`1 / \max(\tau_i, dt)` per node (flyvis's floor). Shapes: ``(N,)``."""
        return self.once(("inv_tau", dt),
                         lambda: 1 / params.effective_time_const(self.time_const, dt))

    def rest(self, batch_size: int) -> torch.Tensor:
        """``(B, N)`` node-major copy of ``bias`` (the graded resting state)."""
        return node_major(self.bias.unsqueeze(0), batch_size)

    def add_input(self, drive: torch.Tensor, input: torch.Tensor | None) -> torch.Tensor:
        """``drive[:, input_nodes] += input`` (in place on ``drive``) and return ``drive``.

        Shapes:
            drive ``(B, N)``; input ``(B, N_in)`` or None.
        """
        if input is None:
            return drive
        if isinstance(self.input_nodes, slice):
            drive[:, self.input_nodes] += input
            return drive
        return drive.index_add_(1, self.input_nodes, input)
