"""Matrix-free linear algebra on a ``matvec`` closure: solves for implicit gradients (GMRES)
and the rightmost eigenpair of an operator (restarted Arnoldi)."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["gmres", "rightmost_eig"]


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


def _arnoldi(matvec: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, m: int):
    """``m`` Arnoldi steps from ``x0`` (CGS2): the basis ``(k + 1, n)`` and the Hessenberg
    matrix ``(k + 1, k)``, ``k <= m`` (fewer when the Krylov space closes)."""
    basis = x0.new_zeros(m + 1, x0.shape[0])
    h = x0.new_zeros(m + 1, m)
    basis[0] = x0 / x0.norm()
    for j in range(m):
        w = matvec(basis[j])
        v = basis[:j + 1]
        c = v @ w
        w = w - c @ v
        c2 = v @ w
        w = w - c2 @ v
        h[:j + 1, j] = c + c2
        h[j + 1, j] = w.norm()
        if h[j + 1, j] <= 1e-12 * h[:j + 2, j].norm():
            return basis[:j + 1], h[:j + 2, :j + 1]
        basis[j + 1] = w / h[j + 1, j]
    return basis, h


def rightmost_eig(matvec: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor,
                  krylov: int = 30, tol: float = 1e-6,
                  max_restarts: int = 20) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The eigenvalue of largest real part of a real square operator, and its eigenvector.

    Explicitly restarted Arnoldi: ``krylov`` products per cycle, the Ritz pair of largest
    real part, the next cycle started from its real and imaginary parts (their sum), until
    the Ritz residual ``|A z - theta z|`` is at most ``tol * max(|theta|, 1)`` for the unit
    Ritz vector ``z``. A starting vector near the answer (the previous one, while a matrix
    changes slowly) usually needs one cycle. Computed in ``x0``'s dtype (use float64).

    Returns:
        ``(theta, z, converged)``: the eigenvalue (complex scalar tensor), the eigenvector
        (complex ``(n,)``, unit norm) and whether the tolerance was reached.

    Shapes:
        ``x0`` is 1-D ``(n,)``, real and not zero.
    """
    if not torch.isfinite(x0).all() or float(x0.norm()) == 0:
        raise ValueError("rightmost_eig: the starting vector must be finite and not zero")
    x = x0
    theta = z = None
    for _ in range(max_restarts + 1):
        basis, h = _arnoldi(matvec, x, krylov)
        k = h.shape[1]
        values, vectors = torch.linalg.eig(h[:k, :k])
        i = int(torch.argmax(values.real))
        theta, y = values[i], vectors[:, i]
        z = y @ basis[:k].to(y.dtype)
        z = z / torch.linalg.vector_norm(z)
        residual = float(torch.linalg.vector_norm(matvec(z.real) + 1j * matvec(z.imag)
                                                  - theta * z))
        if residual <= tol * max(float(theta.abs()), 1.0):
            return theta, z, True
        x = z.real + z.imag
        if float(x.norm()) == 0:
            x = z.real - z.imag
    return theta, z, False
