r"""Fused sparse aggregation for weights shared per cell-type pair.

Every synaptic weight of the connectome factors as

.. math::
    w_e = c_e \, s_{p(e)}, \qquad c_e = \mathrm{sign}_{p(e)} \cdot \mathrm{count}_{o(e)},

a fixed per-edge coefficient ``c`` times a trainable strength ``s`` of the edge's type pair
``p(e)``. The aggregation :math:`y_i = \sum_{e: t(e) = i} w_e x_{s(e)}` is one CSR sparse x
dense product per Euler step. :class:`PairAdjacency` holds the CSR structure, built once per
graph and device (the network's :class:`~flygnn.context.DerivedCache` keeps it);
:meth:`PairAdjacency.bind` fills in the values
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

import torch

__all__ = ["BoundAdjacency", "CSRMatmul", "PairAdjacency", "gather_scatter", "spmm"]


def _csr(rows: torch.Tensor, cols: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, ...]:
    """Row pointer, column indices and the permutation from input order to CSR order (stable:
    a row keeps the input order), all int32 (the CPU kernels convert int64 indices on every
    call, and half the bytes are half the memory)."""
    if rows.numel() >= 2**31:
        raise ValueError(f"{rows.numel()} non-zeros exceed the int32 CSR index range")
    perm = torch.argsort(rows.to(torch.int32), stable=True)  # the same order as int64 keys
    crow = torch.zeros(num_rows + 1, dtype=torch.int32, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
    col = cols.to(torch.int32).index_select(0, perm)
    return crow, col, perm.to(torch.int32)


def _sparse_csr(crow, col, values, shape) -> torch.Tensor:
    """A CSR tensor without invariant checks (the structure is ours) or the 'beta' warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def spmm(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` (CSR x contiguous dense) into a fresh tensor.

    On CPU ``torch.sparse.mm`` zero-fills a result and copies it once more before the kernel
    runs; ``addmm_`` with ``beta=0`` into an empty tensor writes it once (same numbers).
    """
    if dense.device.type != "cpu":
        return torch.sparse.mm(matrix, dense)
    return dense.new_empty(matrix.shape[0], dense.shape[1]).addmm_(matrix, dense, beta=0)


def _node_major(x: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` -> contiguous ``(N, B)`` (free when ``x`` is already node-major), with the
    standard strides ``(B, 1)`` even for ``B = 1`` (the sparse kernels pick their algorithm,
    and with it the rounding, from the strides)."""
    y = x.transpose(0, 1).contiguous()
    if y.stride() != (y.shape[1], 1):  # contiguous with a size-1 dimension
        y = y.as_strided(y.shape, (y.shape[1], 1))
    return y


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
        return spmm(op.matrix, _node_major(x)).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):
        return spmm(ctx.op.transposed(), _node_major(grad)).transpose(0, 1), None


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
            self.matrix = _sparse_csr(crow, col, values.index_select(0, perm), self.shape)
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
                self._t = _sparse_csr(crow, col, values.index_select(0, perm),
                                      self.shape[::-1])
        return self._t

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, num_cols)`` -> ``(B, num_rows)``, node-major in memory."""
        return _MatmulFn.apply(x, self)


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index]`` for a contiguous ``(N, B)`` tensor; rows of 4, 8 or 16 bytes move as one
    element of a 1-D gather (on CPU about twice as fast as a row gather)."""
    widths = {4: torch.float32, 8: torch.float64, 16: torch.complex128}
    wide = widths.get(x.shape[1] * x.element_size())
    if x.device.type == "cpu" and wide is not None:
        return x.view(wide).view(-1).index_select(0, index).view(x.dtype).view(-1, x.shape[1])
    return x.index_select(0, index)


class _PairSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, strength, bound):
        ctx.bound = bound
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(x)
        return spmm(bound.matrix, _node_major(x)).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):
        bound = ctx.bound
        g = _node_major(grad)  # (N, B)
        if not ctx.needs_input_grad[1]:
            grad_x = spmm(bound.transposed(), g).transpose(0, 1)
            return grad_x, None, None
        (x,) = ctx.saved_tensors
        grad_x, grad_s = bound.backward(_node_major(x), g)
        if not ctx.needs_input_grad[0]:
            grad_x = None
        return grad_x, grad_s, None


def _check_pairs(pair_index: torch.Tensor, num_pairs: int) -> torch.Tensor:
    """Entries per pair; ``ValueError`` unless every pair in ``[0, num_pairs)`` has one."""
    counts = torch.bincount(pair_index, minlength=num_pairs)
    if counts.numel() != num_pairs or bool((counts == 0).any()):
        raise ValueError(f"pair_index: expected values in [0, {num_pairs}) with every pair used "
                         "by at least one edge")
    return counts


class _Grouping:
    """Rows = the distinct (pair, node) combinations of the edges (pair-major); the CSR of
    the edges' other endpoint, with ``perm`` from edge order to CSR order (int32 indices)."""

    def __init__(self, pair_index, node, other, num_nodes: int, num_pairs: int):
        small = num_pairs * num_nodes < 2**31  # the keys fit int32: half the bytes to sort
        dtype = torch.int32 if small else torch.int64
        keys = pair_index.to(dtype) * num_nodes
        keys += node.to(dtype)
        keys, row = torch.unique(keys, return_inverse=True)
        self.row_node, self.row_pair = keys % num_nodes, keys // num_nodes
        self.num_rows = int(keys.numel())
        del keys
        row = row.to(torch.int32)
        self.crow, self.col, self.perm = _csr(row, other, self.num_rows)
        self.row_of_edge = row
        counts = _check_pairs(self.row_pair, num_pairs)
        self.pair_ptr = torch.zeros(num_pairs + 1, dtype=torch.int32, device=node.device)
        self.pair_ptr[1:] = torch.cumsum(counts, 0)


class PairAdjacency:
    """CSR structures of a graph whose edge weights are ``c_e * s[pair(e)]``.

    Built once per graph and device (sorting 1.5M edges takes a fraction of a second);
    keep it and call :meth:`bind` once per forward pass. Indices are int32 (CSR column
    indices and the permutations from edge order); the inputs may be int32 or int64.

    * ``A`` (rows = targets): the forward product.
    * ``S`` (rows = (pair, source), values ``c``) and ``Q`` (nodes x those rows, values
      ``s[pair]``): the backward, ``z = S g``, ``grad_x = Q z`` and
      ``grad_s_p = sum over p's rows r of x[source(r)] . z_r``: one CSR product of the size
      of the graph, one small product, one row gather and a segment sum per step; built on
      first use (``by_source``), so a structure used without this backward never holds it.
    * ``by_target`` (rows = (pair, target)), built on first use for dynamics that keep a
      current per (pair, target) (:meth:`BoundAdjacency.grouped_matmul`).

    Args:
        source, target: ``(E,)`` flat node indices (edge order).
        pair_index: ``(E,)`` type pair of every edge, in ``[0, num_pairs)``.
        num_nodes: N.
        num_pairs: P.
    """

    def __init__(self, source, target, pair_index, num_nodes: int, num_pairs: int):
        self.num_nodes, self.num_pairs = int(num_nodes), int(num_pairs)
        self.device = source.device
        self.source, self.target, self.pair_index = source, target, pair_index
        _check_pairs(pair_index, self.num_pairs)
        self.crow, self.col, self.perm = _csr(target, source, self.num_nodes)
        self._by_source = self._by_target = self._t = None
        self._derived: dict = {}

    @property
    def by_source(self) -> _Grouping:
        """``S``'s rows (and, as ``q``, the CSR structure of ``Q``), built on first use (the
        backward of :meth:`BoundAdjacency.matmul`)."""
        if self._by_source is None:
            grp = _Grouping(self.pair_index, self.source, self.target, self.num_nodes,
                            self.num_pairs)
            del grp.row_of_edge
            rows = torch.arange(grp.num_rows, device=self.device)
            grp.q = _csr(grp.row_node, rows, self.num_nodes)
            self._by_source = grp
        return self._by_source

    @property
    def by_target(self) -> _Grouping:
        if self._by_target is None:
            self._by_target = _Grouping(self.pair_index, self.target, self.source,
                                        self.num_nodes, self.num_pairs)
        return self._by_target

    def transpose_structure(self) -> tuple[torch.Tensor, ...]:
        """CSR of ``A^T`` (rows = sources): ``crow, col, perm``, built on first use."""
        if self._t is None:
            self._t = _csr(self.source, self.target, self.num_nodes)
        return self._t

    def weights(self, coeff: torch.Tensor, strength: torch.Tensor,
                perm: torch.Tensor | None = None) -> torch.Tensor:
        """Edge weights ``coeff * strength[pair]`` (no autograd), in edge order or, with
        ``perm``, in the order ``perm`` (e.g. a CSR order): one ``(E,)`` tensor is kept.

        Shapes:
            coeff ``(E,)``, strength ``(P,)``, perm ``(E,)`` -> ``(E,)``.
        """
        with torch.no_grad():
            w = strength.detach().index_select(0, self.pair_index)
            if w.dtype == torch.result_type(coeff, w):
                w.mul_(coeff.detach())  # the product commutes: coeff * strength, bit for bit
            else:
                w = coeff.detach() * w
            return w if perm is None else w.index_select(0, perm)

    def derived(self, key, coeff: torch.Tensor, make):
        """Per-coefficient values: ``make()`` is re-run only when ``coeff`` is another tensor
        (part of this structure's entry in the network's cache)."""
        hit = self._derived.get(key)
        if hit is None or hit[0] is not coeff:
            hit = self._derived[key] = (coeff, make())
        return hit[1]

    @classmethod
    def for_graph(cls, graph, device: torch.device | str | None = None) -> PairAdjacency:
        """The structure of a :class:`~flygnn.flat.FlatGraph` on ``device`` (built, not cached)."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        return cls(graph.source.to(device), graph.target.to(device), graph.pair_index.to(device),
                   graph.num_nodes, len(graph.pairs))

    def bind(self, coeff: torch.Tensor, strength: torch.Tensor) -> BoundAdjacency:
        """Fill in the values ``w = coeff * strength[pair]`` (once per forward pass).

        Args:
            coeff: ``(E,)`` fixed per-edge coefficient (edge order). Pass the same tensor
                object across forward passes to reuse what is derived from it.
            strength: ``(P,)`` pair strengths; gradients flow to it through :meth:`matmul`.
        """
        return BoundAdjacency(self, coeff, strength)


class BoundAdjacency:
    """A :class:`PairAdjacency` with values for one forward pass. See :meth:`matmul`."""

    def __init__(self, structure: PairAdjacency, coeff: torch.Tensor, strength: torch.Tensor):
        s = structure
        self.structure, self.coeff, self.strength = s, coeff, strength
        n = s.num_nodes
        self.matrix = _sparse_csr(s.crow, s.col, s.weights(coeff, strength, s.perm), (n, n))
        self._t = self._m = self._q = None

    def transposed(self) -> torch.Tensor:
        """``A^T`` (CSR, rows = sources), built on first use."""
        if self._t is None:
            s = self.structure
            crow, col, perm = s.transpose_structure()
            values = s.weights(self.coeff, self.strength, perm)
            self._t = _sparse_csr(crow, col, values, (s.num_nodes, s.num_nodes))
        return self._t

    def backward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Gradients of :math:`L` given :math:`g = \partial L / \partial y` for ``y = A x``.

        Shapes:
            x, g ``(N, B)`` contiguous -> grad_x ``(B, N)`` (node-major), grad_s ``(P,)``.
        """
        s, grp = self.structure, self.structure.by_source
        dtype = self.coeff.dtype
        src_matrix = s.derived(("by_source", dtype), self.coeff, lambda: _sparse_csr(
            grp.crow, grp.col, self.coeff.detach().index_select(0, grp.perm),
            (grp.num_rows, s.num_nodes)))
        pair_sum = s.derived(("pair_sum", dtype), self.coeff, lambda: _sparse_csr(
            grp.pair_ptr,
            torch.arange(grp.num_rows, dtype=torch.int32, device=s.device),
            torch.ones(grp.num_rows, dtype=dtype, device=s.device), (s.num_pairs, grp.num_rows)))
        if self._q is None:
            crow_q, col_q, perm_q = grp.q
            with torch.no_grad():
                values = self.strength.detach()[grp.row_pair].index_select(0, perm_q)
            self._q = _sparse_csr(crow_q, col_q, values, (s.num_nodes, grp.num_rows))
        z = spmm(src_matrix, g)  # (R, B): sum over p's edges from j of c_e g[t_e]
        grad_x = spmm(self._q, z).transpose(0, 1)
        z.mul_(_gather_rows(x, grp.row_node))
        grad_s = spmm(pair_sum, z).sum(1)
        return grad_x, grad_s.to(self.strength.dtype)

    def grouped(self) -> CSRMatmul:
        """``M``: rows = (pair, target) (pair-major), values ``coeff``, so that ``(M x)_(p,i)``
        is pair ``p``'s unscaled input to node ``i``. Its transpose reuses the source-major
        order of ``A^T``."""
        if self._m is None:
            s = self.structure
            grp = s.by_target
            coeff = self.coeff.detach()
            shape = (grp.num_rows, s.num_nodes)

            def make():
                crow_t, _, perm_t = s.transpose_structure()
                cols_t = grp.row_of_edge.index_select(0, perm_t)
                return CSRMatmul(None, None, _sparse_csr(grp.crow, grp.col,
                                                         coeff.index_select(0, grp.perm), shape),
                                 shape, transposed=lambda: _sparse_csr(
                                     crow_t, cols_t, coeff.index_select(0, perm_t), shape[::-1]))

            self._m = s.derived(("by_target", coeff.dtype), self.coeff, make)
        return self._m

    def grouped_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``M x`` with autograd to ``x``. Shapes: ``(B, N) -> (B, R)`` (node-major memory)."""
        return self.grouped().matmul(x)

    def addmm_(self, base: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``base + A x`` in one sparse kernel, without autograd, in place into ``base`` when
        it is node-major (the sum of the product is rounded, then added to ``base``: the same
        numbers as ``base + matmul(x)``).

        Shapes:
            base, x ``(B, N)`` (node-major memory avoids copies) -> ``(B, N)`` node-major.
        """
        return _node_major(base).addmm_(self.matrix, _node_major(x)).transpose(0, 1)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`y_{b,i} = \sum_{e: t(e)=i} c_e s_{p(e)} x_{b,s(e)}`.

        Shapes:
            x ``(B, N)`` -> ``(B, N)`` (node-major memory).
        """
        return _PairSpMM.apply(x, self.strength, self)
