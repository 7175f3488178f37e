"""Matrix-free linear solves for implicit gradients (GMRES on a ``matvec`` closure)."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["gmres"]


def gmres(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, tol: float = 1e-6,
          max_iter: int = 200, restart: int = 50) -> tuple[torch.Tensor, bool, int]:
    """Solve ``A x = b`` for a square operator given as ``matvec(x) = A x`` (restarted GMRES).

    Arnoldi with classical Gram-Schmidt applied twice (CGS2: two matrix-vector products with
    the basis per step, as stable as modified Gram-Schmidt) in ``b``'s dtype; the small
    least-squares problems in float64. Stops when the residual is at most ``tol * |b|`` or
    after ``max_iter`` products.

    Returns:
        ``(x, converged, n_matvec)``.

    Shapes:
        ``b`` and ``x`` are 1-D ``(n,)``.
    """
    b_norm = float(b.norm())
    x = torch.zeros_like(b)
    if b_norm == 0:
        return x, True, 0
    r, used = b, 0  # x = 0: the first residual is b; a restart spends one product on it
    basis = b.new_empty(restart + 1, b.shape[0])
    while True:
        beta = float(r.norm())
        if beta <= tol * b_norm:
            return x, True, used
        basis[0] = r / beta
        h = torch.zeros(restart + 1, restart, dtype=torch.float64)
        rhs = torch.zeros(restart + 1, dtype=torch.float64)
        rhs[0] = beta
        for j in range(restart):
            w = matvec(basis[j])
            used += 1
            v = basis[:j + 1]
            c = v @ w
            w = w - c @ v
            c2 = v @ w  # the second pass removes what rounding left of the basis
            w = w - c2 @ v
            h[:j + 1, j] = (c + c2).double()
            h[j + 1, j] = float(w.norm())
            y = torch.linalg.lstsq(h[:j + 2, :j + 1], rhs[:j + 2, None]).solution[:, 0]
            residual = float((h[:j + 2, :j + 1] @ y - rhs[:j + 2]).norm())
            done = residual <= tol * b_norm or h[j + 1, j] <= 1e-12 * beta or used >= max_iter
            if done or j == restart - 1:
                break
            basis[j + 1] = w / h[j + 1, j].item()
        x = x + y.to(b.dtype) @ basis[:y.shape[0]]
        if residual <= tol * b_norm:
            return x, True, used
        if used + 1 >= max_iter:  # no product left after the restart's residual
            return x, False, used
        r, used = b - matvec(x), used + 1
