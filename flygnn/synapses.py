r"""Synaptic input as one PyG ``MessagePassing`` layer with one dispatch.

.. math::
    y_{b,i} = \sum_{e:\, t(e) = i} w_e \, x_{b, s(e)}

:class:`Synapses` takes the presynaptic activity ``x`` (already through the transfer
function, e.g. ``relu(v)`` or spikes) and an adjacency in either form:

* the fused CSR operator of the network (``ctx.adjacency``, a
  :class:`~flygnn.sparse.BoundAdjacency`, or any :class:`~flygnn.sparse.CSRMatmul`):
  :meth:`Synapses.message_and_aggregate` runs one sparse x dense product (about 10x faster
  than gather/scatter on the 1.5M-edge graph, with a derived backward), as PyG's
  convolutions do for a ``SparseTensor``;
* ``(edge_index, edge_weight)`` (``ctx.edges``) or a bare ``edge_index`` (weights 1):
  PyG's gather/scatter :meth:`~torch_geometric.nn.conv.MessagePassing.propagate` with
  :meth:`Synapses.message`, which also gives per-edge weight gradients.

Both forms take and return batch-first ``(B, N)`` tensors; the transposes PyG's node-first
layout needs happen inside, and the fused path returns node-major memory (strides
``(1, B)``), which element-wise updates keep, so an integration loop never copies.
"""

from __future__ import annotations

import torch
from torch_geometric.nn import MessagePassing

from flygnn.sparse import BoundAdjacency, CSRMatmul

__all__ = ["Synapses"]


class Synapses(MessagePassing):
    r"""Weighted sum of presynaptic activity over incoming edges (no parameters of its own).

    Example::

        syn = Synapses()
        y = syn(torch.relu(v), ctx.adjacency)   # fused CSR
        y = syn(torch.relu(v), ctx.edges)       # gather/scatter, same numbers

    Shapes:
        x ``(B, N_src)`` -> ``(B, N_dst)`` (``N_dst = N_src`` for an edge list; the number
        of rows of a CSR operator).
    """

    def __init__(self) -> None:
        super().__init__(aggr="sum", node_dim=0)

    def forward(self, x: torch.Tensor, adj) -> torch.Tensor:
        """``y = A x`` for ``adj`` in any supported form (see :meth:`propagate`)."""
        return self.propagate(adj, x=x)

    def propagate(self, adj, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Dispatch on the form of ``adj``.

        Args:
            adj: a fused operator (``BoundAdjacency`` / ``CSRMatmul``), a tuple
                ``(edge_index (2, E), edge_weight (E,) or None)``, or an ``edge_index``.
            x: ``(B, N_src)`` presynaptic activity.

        Raises:
            ValueError: ``adj`` of another kind, or ``x`` not 2-D.
        """
        if x.dim() != 2:
            raise ValueError(f"Synapses: x must be (batch, nodes), got shape {tuple(x.shape)}")
        if isinstance(adj, (BoundAdjacency, CSRMatmul)):
            return self.message_and_aggregate(adj, x)
        if isinstance(adj, torch.Tensor) and not adj.is_sparse:
            adj = (adj, None)
        if not (isinstance(adj, tuple) and len(adj) == 2 and isinstance(adj[0], torch.Tensor)
                and adj[0].dim() == 2 and adj[0].shape[0] == 2):
            raise ValueError("Synapses: adj must be a fused adjacency (ctx.adjacency) or "
                             f"(edge_index (2, E), edge_weight), got {type(adj).__name__}")
        edge_index, edge_weight = adj
        out = super().propagate(edge_index, x=x.transpose(0, 1), edge_weight=edge_weight,
                                **kwargs)
        return out.transpose(0, 1)

    def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor | None) -> torch.Tensor:
        """``w_e x_{s(e)}`` per edge. Shapes: ``x_j (E, B)``, ``edge_weight (E,)``."""
        return x_j if edge_weight is None else edge_weight.unsqueeze(-1) * x_j

    def message_and_aggregate(self, adj: BoundAdjacency | CSRMatmul,
                              x: torch.Tensor) -> torch.Tensor:
        """Fused path: one CSR x dense product, ``(B, N_src) -> (B, N_dst)`` node-major."""
        return adj.matmul(x)
