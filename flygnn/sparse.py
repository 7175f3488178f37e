r"""Fused sparse aggregation for weights shared per cell-type pair.

Every synaptic weight of the connectome factors as

.. math::
    w_e = c_e \, s_{p(e)}, \qquad c_e = \mathrm{sign}_{p(e)} \cdot \mathrm{count}_{o(e)},

a fixed per-edge coefficient ``c`` times a trainable strength ``s`` of the edge's type pair
``p(e)``. The aggregation :math:`y_i = \sum_{e: t(e) = i} w_e x_{s(e)}` is one CSR sparse x
dense product per Euler step. :class:`PairAdjacency` holds the CSR structure, built once per
graph and device and cached (``for_graph``); :meth:`PairAdjacency.bind` fills in the values
once per forward pass (:class:`BoundAdjacency`); :meth:`BoundAdjacency.matmul` applies the
product through a custom ``torch.autograd.Function`` whose backward computes

* the input gradient with the transposed product ``A^T g`` (a second CSR, built once), and
* the strength gradient :math:`\partial L / \partial s_p = \sum_i g_i \cdot (M_p x)_i`, where
  :math:`M_p` is the pair's block of the adjacency with values ``c`` (rows = (pair, target),
  pair-major): one more CSR product, a row gather of ``g`` and a segment sum to the pairs.
  No ``(batch, edges)`` tensor is ever formed. Per-edge weight gradients are not offered
  here (use the gather/scatter path of :mod:`flygnn.dynamics` for that).

Layout: activities are ``(B, N)`` tensors; results are returned node-major in memory (strides
``(1, B)``, i.e. the transpose of a contiguous ``(N, B)`` tensor), which is what the CSR
kernel produces. Element-wise ops keep that layout, so an Euler loop never copies.
"""

from __future__ import annotations

import warnings
import weakref

import torch

__all__ = ["PairAdjacency", "BoundAdjacency", "CSRMatmul", "gather_scatter"]


def _csr(rows: torch.Tensor, cols: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, ...]:
    """Row pointer, column indices (int32: the CPU kernels convert int64 on every call) and
    the permutation from input order to CSR order (stable: a row keeps the input order)."""
    if rows.numel() >= 2**31:
        raise ValueError(f"{rows.numel()} non-zeros exceed the int32 CSR index range")
    perm = torch.argsort(rows, stable=True)
    crow = torch.zeros(num_rows + 1, dtype=torch.int32, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
    return crow, cols[perm].to(torch.int32), perm


def _sparse_csr(crow, col, values, shape) -> torch.Tensor:
    """A CSR tensor without invariant checks (the structure is ours) or the 'beta' warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _node_major(x: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` -> contiguous ``(N, B)`` (free when ``x`` is already node-major)."""
    return x.transpose(0, 1).contiguous()


def gather_scatter(x: torch.Tensor, weight: torch.Tensor, source: torch.Tensor,
                   target: torch.Tensor, num_nodes: int) -> torch.Tensor:
    r"""Reference aggregation :math:`y_{b,i} = \sum_{e: t(e)=i} w_e x_{b,s(e)}` (edge order).

    Shapes:
        x ``(B, N_src)``, weight/source/target ``(E,)`` -> ``(B, num_nodes)``.
    """
    messages = x.index_select(1, source) * weight
    return x.new_zeros(x.shape[0], num_nodes).index_add_(1, target, messages)


class _MatmulFn(torch.autograd.Function):
    """``y = A x`` for a fixed CSR ``A``; ``x`` gets ``A^T g`` (``A^T`` built on demand)."""

    @staticmethod
    def forward(ctx, x, op):
        ctx.op = op
        return torch.sparse.mm(op.matrix, _node_major(x)).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):
        return torch.sparse.mm(ctx.op.transposed(), _node_major(grad)).transpose(0, 1), None


class CSRMatmul:
    """A fixed sparse matrix with autograd to its dense operand (values get no gradient).

    Args:
        rows, cols: ``(nnz,)`` coordinates; values: ``(nnz,)``.
        shape: ``(num_rows, num_cols)``.
        transposed: optional callable returning the CSR of the transpose (else built by sorting).
    """

    def __init__(self, rows, cols, values, shape, transposed=None):
        self.shape = tuple(shape)
        if rows is None:  # prebuilt: ``values`` is the CSR matrix
            self.matrix = values
        else:
            crow, col, perm = _csr(rows, cols, self.shape[0])
            self.matrix = _sparse_csr(crow, col, values[perm], self.shape)
        self._coo = (rows, cols, values)
        self._make_t = transposed
        self._t = None

    def transposed(self) -> torch.Tensor:
        """CSR of the transpose, built on first use."""
        if self._t is None:
            if self._make_t is not None:
                self._t = self._make_t()
            else:
                rows, cols, values = self._coo
                crow, col, perm = _csr(cols, rows, self.shape[1])
                self._t = _sparse_csr(crow, col, values[perm], self.shape[::-1])
        return self._t

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, num_cols)`` -> ``(B, num_rows)``, node-major in memory."""
        return _MatmulFn.apply(x, self)


class _PairSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, strength, bound):
        ctx.bound = bound
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(x)
        return torch.sparse.mm(bound.matrix, _node_major(x)).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):
        bound = ctx.bound
        g = _node_major(grad)  # (N, B)
        grad_x = grad_s = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.sparse.mm(bound.transposed(), g).transpose(0, 1)
        if ctx.needs_input_grad[1]:
            (x,) = ctx.saved_tensors
            grad_s = bound.strength_grad(x, g)
        return grad_x, grad_s, None


class PairAdjacency:
    """CSR structures of a graph whose edge weights are ``c_e * s[pair(e)]``.

    Built once per graph and device (sorting 1.5M edges takes a fraction of a second);
    keep it and call :meth:`bind` once per forward pass.

    Args:
        source, target: ``(E,)`` flat node indices (edge order).
        pair_index: ``(E,)`` type pair of every edge, in ``[0, num_pairs)``.
        num_nodes: N.
        num_pairs: P.

    Attributes:
        perm: ``(E,)`` edge order -> CSR (target-major) order.
        row_node, row_pair: ``(R,)`` target node and pair of each (pair, target) row.
        pair_ptr: ``(P + 1,)`` row block of each pair.
    """

    _cache: dict = {}

    def __init__(self, source, target, pair_index, num_nodes: int, num_pairs: int):
        self.num_nodes, self.num_pairs = int(num_nodes), int(num_pairs)
        self.device = source.device
        self.pair_index = pair_index
        n = self.num_nodes
        self.crow, self.col, self.perm = _csr(target, source, n)
        self.crow_t, self.col_t, self.perm_t = _csr(source, target, n)
        keys, row = torch.unique(pair_index * n + target, return_inverse=True)
        self.row_node, self.row_pair = keys % n, keys // n
        self.num_rows = int(keys.numel())
        self.crow_m, self.col_m, self.perm_m = _csr(row, source, self.num_rows)
        self.row_of_edge = row
        counts = torch.bincount(self.row_pair, minlength=self.num_pairs)
        self.pair_ptr = torch.zeros(self.num_pairs + 1, dtype=torch.long, device=self.device)
        self.pair_ptr[1:] = torch.cumsum(counts, 0)
        if bool((counts == 0).any()):
            raise ValueError("pair_index: every pair in [0, num_pairs) needs at least one edge")

    @classmethod
    def for_graph(cls, graph, device: torch.device | str | None = None) -> PairAdjacency:
        """The structure of a :class:`~flygnn.flat.FlatGraph` on ``device``, cached per graph."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        key = (id(graph), str(device))
        hit = cls._cache.get(key)
        if hit is not None and hit[0]() is graph:
            return hit[1]
        adj = cls(graph.source.to(device), graph.target.to(device), graph.pair_index.to(device),
                  graph.num_nodes, len(graph.pairs))
        cls._cache[key] = (weakref.ref(graph, lambda _, k=key: cls._cache.pop(k, None)), adj)
        return adj

    def bind(self, coeff: torch.Tensor, strength: torch.Tensor) -> BoundAdjacency:
        """Fill in the values ``w = coeff * strength[pair]`` (once per forward pass).

        Args:
            coeff: ``(E,)`` fixed per-edge coefficient (edge order).
            strength: ``(P,)`` pair strengths; gradients flow to it through :meth:`matmul`.
        """
        return BoundAdjacency(self, coeff, strength)


class BoundAdjacency:
    """A :class:`PairAdjacency` with values for one forward pass. See :meth:`matmul`."""

    def __init__(self, structure: PairAdjacency, coeff: torch.Tensor, strength: torch.Tensor):
        s = structure
        self.structure, self.coeff, self.strength = s, coeff, strength
        with torch.no_grad():
            weight = coeff * strength.detach()[s.pair_index]
            shape = (s.num_nodes, s.num_nodes)
            self.matrix = _sparse_csr(s.crow, s.col, weight[s.perm], shape)
        self._weight = weight
        self._t = self._m = None

    def transposed(self) -> torch.Tensor:
        """``A^T`` (CSR, rows = sources), built on first use."""
        if self._t is None:
            s = self.structure
            self._t = _sparse_csr(s.crow_t, s.col_t, self._weight[s.perm_t],
                                  (s.num_nodes, s.num_nodes))
        return self._t

    def grouped(self) -> CSRMatmul:
        """``M``: rows = (pair, target) (pair-major), values ``coeff``, so that ``(M x)_(p,i)``
        is pair ``p``'s unscaled input to node ``i``. Built on first use; its transpose
        reuses the source-major order of ``A^T``."""
        if self._m is None:
            s = self.structure
            coeff = self.coeff.detach()
            shape = (s.num_rows, s.num_nodes)
            matrix = _sparse_csr(s.crow_m, s.col_m, coeff[s.perm_m], shape)
            self._m = CSRMatmul(None, None, matrix, shape, transposed=lambda: _sparse_csr(
                s.crow_t, s.row_of_edge[s.perm_t].to(torch.int32), coeff[s.perm_t], shape[::-1]))
        return self._m

    def grouped_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``M x`` with autograd to ``x``. Shapes: ``(B, N) -> (B, R)`` (node-major memory)."""
        return self.grouped().matmul(x)

    def strength_grad(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        r""":math:`\partial L/\partial s_p = \sum_{r \in p} g_{node(r)} \cdot (M x)_r`.

        Shapes:
            x ``(B, N)``, g ``(N, B)`` -> ``(P,)``.
        """
        s = self.structure
        y = torch.sparse.mm(self.grouped().matrix, _node_major(x))  # (R, B)
        y.mul_(g.index_select(0, s.row_node))
        per_pair = torch.segment_reduce(y, "sum", offsets=s.pair_ptr, axis=0)
        return per_pair.sum(1).to(self.strength.dtype)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`y_{b,i} = \sum_{e: t(e)=i} c_e s_{p(e)} x_{b,s(e)}`.

        Shapes:
            x ``(B, N)`` -> ``(B, N)`` (node-major memory).
        """
        return _PairSpMM.apply(x, self.strength, self)
