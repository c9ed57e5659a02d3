"""The one QR re-orthonormalisation step shared by every tangent estimator."""
from __future__ import annotations

import torch

QR_METHODS = ("auto", "householder", "mgs", "cholqr2")


def _mgs(V: torch.Tensor):
    """Modified Gram-Schmidt, batched: Q (B, d, k) and diag(R) (B, k) with diag(R) >= 0."""
    W = V.clone()
    qs, diag = [], []
    for j in range(W.shape[-1]):
        r = torch.linalg.vector_norm(W[:, :, j], dim=1)
        q = W[:, :, j] / r.unsqueeze(-1)
        if j + 1 < W.shape[-1]:
            rest = W[:, :, j + 1:]
            rest -= q.unsqueeze(-1) * torch.einsum("bd,bdk->bk", q, rest).unsqueeze(1)
        qs.append(q)
        diag.append(r)
    return torch.stack(qs, dim=2), torch.stack(diag, dim=1)


def _cholqr2(V: torch.Tensor):
    """CholeskyQR2 (Fukaya, Nakatsukasa, Yanagisawa & Yamamoto, ScalA 2014; Yamamoto et al.,
    ETNA 44 (2015)): two passes of R = chol(V^T V)^T, Q = V R^-1; diag(R) = diag(R2) diag(R1).

    Two matrix products, two k x k Choleskys and two triangular solves per
    pass: on a GPU mostly GEMM, far faster than Householder for d >> k and
    than batched Householder for many small frames.  Stable (orthogonality
    O(eps)) when cond(V) < ~eps^-1/2 = 1e8; float32 frames are factorised in
    float64 (a float64 GEMM on O(d k) data, cheap next to the tangent
    product) and Q is rounded back, so they get the same range.
    Returns Q, diag(R) and ``ok`` (B,): False for a frame where that cannot
    be guaranteed (a Cholesky breakdown, or max/min diag(R1), a lower bound
    of cond(V), above eps^-1/2 / 10, or a non-finite result); the caller
    redoes those frames another way.
    """
    dtype = V.dtype
    if dtype == torch.float32:  # Gram and Cholesky in float64: stable up to cond ~1e8, not 3e3
        V = V.to(torch.float64)
    eps = torch.finfo(V.dtype).eps
    L1, info1 = torch.linalg.cholesky_ex(V.transpose(-2, -1) @ V)
    d1 = torch.diagonal(L1, dim1=-2, dim2=-1)
    ok = (info1 == 0) & (d1.max(dim=-1).values < (0.1 / eps ** 0.5) * d1.min(dim=-1).values)
    # Q1 = V L1^-T: solve Q1 L1^T = V from the right
    Q1 = torch.linalg.solve_triangular(L1.transpose(-2, -1), V, upper=True, left=False)
    L2, info2 = torch.linalg.cholesky_ex(Q1.transpose(-2, -1) @ Q1)
    Q = torch.linalg.solve_triangular(L2.transpose(-2, -1), Q1, upper=True, left=False)
    diag = d1 * torch.diagonal(L2, dim1=-2, dim2=-1)
    ok = ok & (info2 == 0) & torch.isfinite(diag).all(dim=-1)
    return Q.to(dtype), diag, ok


def _fallback(V: torch.Tensor):
    """QR of frames CholeskyQR2 cannot take: Householder on the CPU or for wide frames;
    on CUDA with k <= 64, modified Gram-Schmidt twice (batched vector sweeps; "twice is
    enough", Giraud, Langou & Rozloznik 2005), since batched small Householder QRs run one
    after another there."""
    if V.is_cuda and V.shape[-1] <= 64:
        Q1, d1 = _mgs(V)
        Q, d2 = _mgs(Q1)
        return Q, d1 * d2
    Q, R = torch.linalg.qr(V, mode="reduced")
    diag = torch.diagonal(R, dim1=-2, dim2=-1)
    sign = torch.where(diag < 0, -1.0, 1.0).to(V.dtype)
    return Q * sign.unsqueeze(-2), diag.abs()


def qr_positive(V: torch.Tensor, method: str = "householder"):
    """Re-orthonormalise a batch of frames V (B, d, k) = Q R with diag(R) > 0.

    Returns ``Q`` (B, d, k) and ``log_growth`` = ln|R_ii| (B, k) in float64
    (the growth of the i-th Gram-Schmidt direction since the last step).
    The sign fix keeps Q continuous from step to step, so the frame converges
    to the backward Lyapunov vectors.  ``householder``: Householder
    reflections, torch.linalg.qr (LAPACK geqrf / cuSOLVER); for k = 1 the
    same result is simply v / |v|.  ``mgs``: modified Gram-Schmidt, k
    batched column sweeps (orthogonality degrades like cond(V) eps, fine for
    frames re-orthonormalised often).  ``auto`` (the default of the
    estimators): Householder on the CPU, CholeskyQR2 on CUDA.  A zero R_ii (a frame collapsed by a singular Jacobian)
    gives -inf, which the caller reports.  ``cholqr2``: CholeskyQR2 (see
    :func:`_cholqr2`); the frames too ill-conditioned for it are redone by
    :func:`_fallback` (Householder, or Gram-Schmidt twice on CUDA).
    """
    if method not in QR_METHODS:
        raise ValueError(f"invalid method={method!r}: allowed {QR_METHODS}")
    if method == "auto":
        # batched Householder on CUDA runs one small factorisation after another (0.3 s for
        # 4096 frames of 2 x 2 on an H100, measured); CholeskyQR2 is batched GEMM + potrf
        method = "cholqr2" if V.is_cuda else "householder"
    k = V.shape[-1]
    if k == 1:
        r = torch.linalg.vector_norm(V, dim=-2)  # (B, 1)
        return V / r.unsqueeze(-1), torch.log(r.to(torch.float64))
    if method == "mgs":
        Q, diag = _mgs(V)
        return Q, torch.log(diag.to(torch.float64))
    if method == "cholqr2":
        Q, diag, ok = _cholqr2(V)
        if not bool(ok.all()):  # redo only the frames CholeskyQR2 cannot take
            bad = torch.nonzero(~ok).flatten()
            Qb, db = _fallback(V[bad])
            Q, diag = Q.index_copy(0, bad, Qb), diag.index_copy(0, bad, db.to(diag.dtype))
        return Q, torch.log(diag.to(torch.float64))
    Q, R = torch.linalg.qr(V, mode="reduced")
    diag = torch.diagonal(R, dim1=-2, dim2=-1)
    sign = torch.where(diag < 0, -1.0, 1.0).to(V.dtype)
    return Q * sign.unsqueeze(-2), torch.log(diag.abs().to(torch.float64))
