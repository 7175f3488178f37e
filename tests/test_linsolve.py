"""GMRES (:func:`flygnn.linsolve.gmres`) against a direct solve."""

import pytest
import torch

from flygnn.linsolve import gmres


def _system(n: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.eye(n, dtype=dtype) + 0.3 * torch.randn(n, n, generator=g, dtype=dtype) / n ** 0.5
    return a, torch.randn(n, generator=g, dtype=dtype)


@pytest.mark.parametrize("restart", [5, 50])
def test_gmres_solves_a_nonsymmetric_system(restart):
    """Restarted (5) or not (50): the solution of ``A x = b`` to the tolerance, with the
    number of products it reports."""
    a, b = _system(40, 0)
    calls = []

    def matvec(x):
        calls.append(1)
        return a @ x
    x, converged, used = gmres(matvec, b, tol=1e-10, max_iter=200, restart=restart)
    assert converged and used == len(calls)
    expected = torch.linalg.solve(a, b)
    assert torch.allclose(x, expected, rtol=0, atol=1e-8 * float(expected.abs().max()))
    assert float((a @ x - b).norm()) <= 1e-10 * float(b.norm()) * 1.0001


def test_gmres_reports_no_convergence_within_max_iter():
    """Too few products: not converged, the residual smaller than at the start."""
    a, b = _system(60, 1)
    a = a + 2.0 * torch.diag(torch.linspace(0, 1, 60, dtype=torch.float64))
    x, converged, used = gmres(lambda v: a @ v, b, tol=1e-12, max_iter=4, restart=50)
    assert not converged and used == 4
    assert float((a @ x - b).norm()) < float(b.norm())
    zero, ok, n = gmres(lambda v: a @ v, torch.zeros(60, dtype=torch.float64))
    assert ok and n == 0 and torch.equal(zero, torch.zeros(60, dtype=torch.float64))
