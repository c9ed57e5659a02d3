"""The shared QR step: positive diagonal, and the k = 1 path equals LAPACK's Householder QR."""
import pytest
import torch

from suite.linalg import qr_positive


def lapack_positive(V):
    Q, R = torch.linalg.qr(V)
    diag = torch.diagonal(R, dim1=-2, dim2=-1)
    s = torch.where(diag < 0, -1.0, 1.0).to(V.dtype)
    return Q * s.unsqueeze(-2), torch.log(diag.abs())


@pytest.mark.parametrize("d,k", [(1, 1), (2, 2), (3, 3), (5, 2), (8, 1), (16, 16), (20, 6)])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-4)])
def test_qr_positive_matches_lapack(d, k, dtype, tol):
    V = torch.randn(7, d, k, dtype=dtype, generator=torch.Generator().manual_seed(d * 10 + k))
    Q, lg = qr_positive(V)
    Q2, lg2 = lapack_positive(V)
    assert lg.dtype == torch.float64
    torch.testing.assert_close(Q, Q2, rtol=tol, atol=tol)
    torch.testing.assert_close(lg, lg2.to(torch.float64), rtol=tol, atol=tol)
    # orthonormal columns and V = Q R with positive diagonal
    torch.testing.assert_close(Q.transpose(1, 2) @ Q, torch.eye(k, dtype=dtype).expand(7, k, k), rtol=tol, atol=tol)


@pytest.mark.parametrize("d,k", [(2, 2), (5, 3), (12, 12)])
def test_mgs_matches_householder(d, k):
    V = torch.randn(4, d, k, dtype=torch.float64, generator=torch.Generator().manual_seed(d + k))
    Qh, lh = qr_positive(V, "householder")
    Qm, lm = qr_positive(V, "mgs")
    torch.testing.assert_close(Qm, Qh, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lm, lh, rtol=1e-12, atol=1e-12)


def test_collapsed_frame_gives_minus_inf():
    V = torch.zeros(2, 3, 2, dtype=torch.float64)
    V[:, 0, 0] = 1.0
    V[:, 0, 1] = 2.0  # second column parallel to the first
    _, lg = qr_positive(V)
    assert torch.isneginf(lg[:, 1]).all() or (lg[:, 1] < -30).all()


def test_unknown_method():
    with pytest.raises(ValueError, match="householder.*mgs"):
        qr_positive(torch.randn(1, 2, 2), method="givens")
