"""The shared QR step: positive diagonal, and the k = 1 path equals LAPACK's Householder QR."""
import pytest
import torch

from suite.estimators.numerics.linalg import qr_positive


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


@pytest.mark.parametrize("method,q_factor", [("cholqr2", 1), ("cholqr", 10)])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_cholqr_matches_householder_on_well_conditioned_frames(method, q_factor, dtype, tol):
    """cond(V) ~ 10: the same ln R_ii as Householder; one pass leaves Q orthonormal only to
    eps cond^2 (float32 frames: Q rounded from float64), hence its wider tolerance on Q."""
    V = torch.randn(6, 300, 40, dtype=dtype, generator=torch.Generator().manual_seed(3))
    Qh, lh = qr_positive(V, "householder")
    Qc, lc = qr_positive(V, method)
    qtol = q_factor * tol
    torch.testing.assert_close(lc, lh, rtol=tol, atol=tol)
    torch.testing.assert_close(Qc, Qh, rtol=qtol, atol=qtol)
    torch.testing.assert_close(Qc.transpose(1, 2) @ Qc, torch.eye(40, dtype=dtype).expand(6, 40, 40), rtol=qtol,
                               atol=qtol)


def test_one_pass_cholqr_error_is_a_boundary_term_not_a_per_step_one():
    """400 renormalisations of frames pushed by random matrices with singular values e^0 .. e^-14
    (cond(V) ~ 1e6, near the limit where 'ok' hands a frame on): one pass of CholeskyQR leaves Q
    orthonormal only to delta ~ eps cond^2 ~ 1e-4 and each interval's ln R_ii off by as much, yet
    the run's sums agree with Householder's to O(delta), because the R factors telescope
    (J_T ... J_1 Q_0 = Q_T R_T ... R_1)."""
    from suite.estimators.numerics.linalg import _cholqr
    g = torch.Generator().manual_seed(0)
    B, d, steps = 4, 8, 400
    Qh = Qc = torch.linalg.qr(torch.randn(B, d, d, dtype=torch.float64, generator=g))[0]
    sum_h = torch.zeros(B, d, dtype=torch.float64)
    sum_c = torch.zeros_like(sum_h)
    per_step, delta = 0.0, 0.0
    for _ in range(steps):
        U = torch.linalg.qr(torch.randn(B, d, d, dtype=torch.float64, generator=g))[0]
        W = torch.linalg.qr(torch.randn(B, d, d, dtype=torch.float64, generator=g))[0]
        J = U * torch.exp(-torch.linspace(0, 14, d, dtype=torch.float64)) @ W
        assert bool(_cholqr(J @ Qc, passes=1)[2].all())  # every frame is CholeskyQR's, none handed on
        Qh, lh = qr_positive(J @ Qh, "householder")
        Qc, lc = qr_positive(J @ Qc, "cholqr")
        sum_h += lh
        sum_c += lc
        per_step += float((lh - lc).abs().max())
        delta = max(delta, float((Qc.transpose(1, 2) @ Qc - torch.eye(d, dtype=torch.float64)).abs().max()))
    total = float((sum_h - sum_c).abs().max())
    assert 1e-6 < delta < 1e-2  # one pass really is not orthonormal here (the test is not vacuous)
    assert per_step > 100 * total  # the per-interval errors cancel ...
    assert total < 10 * delta  # ... to a boundary term of the size of Q's loss of orthogonality


def test_cholqr2_mixed_good_and_bad_float32_frames():
    """float32 frames, one beyond CholeskyQR2's range (cond 1e12): masks and dtypes stay consistent."""
    g = torch.Generator().manual_seed(5)
    U, _ = torch.linalg.qr(torch.randn(2, 40, 6, dtype=torch.float64, generator=g))
    V = U.clone()
    V[0] = U[0] * torch.logspace(0, -12, 6, dtype=torch.float64)
    Q, lg = qr_positive(V.float(), "cholqr2")
    Qh, lh = qr_positive(V.float(), "householder")
    assert Q.dtype == torch.float32 and lg.dtype == torch.float64
    torch.testing.assert_close(lg[1], lh[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(lg[0, :3], lh[0, :3], rtol=0, atol=1e-4)


def test_cholqr2_falls_back_to_householder_on_ill_conditioned_frames():
    """cond(V) = 1e12 > eps^-1/2: CholeskyQR2 would lose orthogonality, so Householder is used."""
    g = torch.Generator().manual_seed(4)
    U, _ = torch.linalg.qr(torch.randn(3, 50, 8, dtype=torch.float64, generator=g))
    W, _ = torch.linalg.qr(torch.randn(3, 8, 8, dtype=torch.float64, generator=g))
    V = U * torch.logspace(0, -12, 8, dtype=torch.float64) @ W
    from suite.estimators.numerics.linalg import _cholqr, _mgs
    V[1] = U[1]  # one well-conditioned frame beside two bad ones
    Qh, lh = qr_positive(V, "householder")
    for method, passes in (("cholqr2", 2), ("cholqr", 1)):
        assert _cholqr(V, passes)[2].tolist() == [False, True, False]
        Qc, lc = qr_positive(V, method)
        torch.testing.assert_close(Qc, Qh, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(lc, lh, rtol=1e-9, atol=1e-9)
    # the CUDA fallback, Gram-Schmidt twice, on the bad frames: orthonormal to eps and the same ln R_ii
    Q1, d1, _ = _mgs(V)
    Q2, d2, _ = _mgs(Q1)
    torch.testing.assert_close(Q2.transpose(1, 2) @ Q2, torch.eye(8, dtype=torch.float64).expand(3, 8, 8),
                               rtol=0, atol=1e-14)
    # ln R_ii of the weakest direction is determined to eps * cond(V) = 2.2e-4 by any backward-stable QR
    torch.testing.assert_close(torch.log(d1 * d2), lh, rtol=0, atol=2.2e-4)


def test_collapsed_frame_gives_minus_inf():
    V = torch.zeros(2, 3, 2, dtype=torch.float64)
    V[:, 0, 0] = 1.0
    V[:, 0, 1] = 2.0  # second column parallel to the first
    _, lg = qr_positive(V)
    assert torch.isneginf(lg[:, 1]).all() or (lg[:, 1] < -30).all()


def test_unknown_method():
    with pytest.raises(ValueError, match="householder.*mgs.*cholqr.*cholqr2"):
        qr_positive(torch.randn(1, 2, 2), method="givens")


def test_auto_method_rule():
    """'auto': one-pass CholeskyQR on CUDA (not testable here); on the CPU Gram-Schmidt for d <= MGS_MAX_DIM
    and Householder above, whatever the batch (so a trajectory's bits do not depend on it)."""
    from suite.estimators.numerics.linalg import MGS_MAX_DIM, auto_method
    for B in (1, 7, 4096):
        assert auto_method(torch.empty(B, MGS_MAX_DIM, 2)) == "mgs"
        assert auto_method(torch.empty(B, MGS_MAX_DIM + 1, 2)) == "householder"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_mgs_on_many_ill_conditioned_small_frames(dtype):
    """What 'auto' runs for a Henon or Lorenz-63 batch: 512 frames of 3 x 3 with cond(V) up to 1e6
    (float32: 1e3).  ln R_ii agrees with Householder to eps * cond(V) (Bjorck & Paige 1992: the
    MGS R is as backward stable as Householder's); Q is orthonormal to eps * cond(V)."""
    g = torch.Generator().manual_seed(11)
    B, d = 512, 3
    top = 6.0 if dtype == torch.float64 else 3.0
    U, _ = torch.linalg.qr(torch.randn(B, d, d, dtype=torch.float64, generator=g))
    W, _ = torch.linalg.qr(torch.randn(B, d, d, dtype=torch.float64, generator=g))
    scales = 10.0 ** (-top * torch.rand(B, 1, d, dtype=torch.float64, generator=g))
    V = ((U * scales) @ W).to(dtype)
    cond = torch.linalg.cond(V.double())
    eps = torch.finfo(dtype).eps
    Qh, lh = qr_positive(V, "householder")
    Qm, lm = qr_positive(V, "auto")
    assert lm.dtype == torch.float64 and Qm.shape == V.shape and Qm.dtype == dtype
    bound = 10 * eps * cond.unsqueeze(1)
    assert ((lm - lh).abs() <= bound).all()
    G = Qm.transpose(1, 2).double() @ Qm.double()
    assert ((G - torch.eye(d, dtype=torch.float64)).abs().amax(dim=(1, 2)) <= 10 * eps * cond).all()


def test_mgs_hands_frames_it_cannot_take_to_householder():
    """Beyond cond(V) = MGS_MAX_DELTA / eps Gram-Schmidt's Q would not be orthonormal to 1e-4: such
    a frame, and a collapsed (zero) one, get exactly Householder's answer (-inf for the zero one);
    the well-conditioned frame beside them stays Gram-Schmidt's."""
    g = torch.Generator().manual_seed(8)
    U, _ = torch.linalg.qr(torch.randn(3, 3, 3, dtype=torch.float64, generator=g))
    W, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=g))
    V = U.clone()
    V[0] = U[0] * torch.tensor([1.0, 1e-6, 1e-14], dtype=torch.float64) @ W  # cond 1e14 > 1e-4 / eps = 4.5e11
    V[1] = 0.0
    Q, lg = qr_positive(V, "mgs")
    Qh, lh = qr_positive(V, "householder")
    assert torch.equal(Q[0], Qh[0]) and torch.equal(lg[0], lh[0])
    assert torch.isneginf(lg[1]).all() and torch.isneginf(lh[1]).all()
    from suite.estimators.numerics.linalg import _mgs
    assert _mgs(V)[2].tolist() == [False, False, True]
    torch.testing.assert_close(lg[2], lh[2], rtol=0, atol=1e-14)
