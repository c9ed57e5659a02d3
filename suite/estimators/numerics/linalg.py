"""The one QR re-orthonormalisation step shared by every tangent estimator."""
from __future__ import annotations

import math

import torch

QR_METHODS = ("auto", "householder", "mgs", "cholqr", "cholqr2")


# Gram-Schmidt's Q loses orthogonality like eps * cond(V) (Bjorck 1967); a Q off by delta
# makes the next renormalisation's log-volumes wrong by ~delta^2.  Frames whose projected
# column is shorter than eps / MGS_MAX_DELTA of the column (cond(V) > MGS_MAX_DELTA / eps)
# are redone with Householder, so delta stays <= 1e-4 and the error per renormalisation
# <= ~1e-8 nats.
MGS_MAX_DELTA = 1e-4


def _mgs(V: torch.Tensor):
    """Modified Gram-Schmidt, batched: Q (B, d, k), diag(R) (B, k) >= 0 and ``ok`` (B,).

    Works on a batch-last copy W (k, d, B): column j of every frame is one
    contiguous (d, B) block, so each sweep is a few vectorised passes over
    the batch instead of strided (B, d) slices.  For large batches of small
    frames (Henon, Lorenz-63) that is 6-8x faster than LAPACK's batched
    Householder, which factorises one frame after another (see
    :func:`auto_method`).  Q is returned as a (B, d, k) view of W.  Every
    operation is elementwise or a sum over d in a fixed order, so a frame's
    bits do not depend on the batch it is in (``torch.linalg.vector_norm``
    rounds differently in its vectorised lanes and its scalar tail).
    ``ok`` is False for a frame Gram-Schmidt cannot be trusted with: a
    column that cancelled to below eps / MGS_MAX_DELTA of its length (Q
    would not be orthonormal to MGS_MAX_DELTA), a zero column, or a
    non-finite norm (the norms are unscaled: a column longer than
    sqrt(max float), 1e154 in float64 and 2e19 in float32, overflows).
    """
    W = V.permute(2, 1, 0).contiguous()  # (k, d, B)
    length = torch.sqrt((W * W).sum(dim=1))  # (k, B), before any projection
    diag = torch.empty_like(length)
    for j in range(W.shape[0]):
        q = W[j]
        r = torch.sqrt((q * q).sum(dim=0))  # (B,); not vector_norm, whose vectorised path rounds differently
        q.div_(r)
        diag[j] = r
        if j + 1 < W.shape[0]:
            rest = W[j + 1:]
            rest.sub_((rest * q).sum(dim=1, keepdim=True) * q)
    tiny = torch.finfo(V.dtype).eps / MGS_MAX_DELTA
    ok = (torch.isfinite(diag) & (diag > tiny * length)).all(dim=0)
    return W.permute(2, 1, 0), diag.T, ok


def _cholqr(V: torch.Tensor, passes: int = 2):
    """CholeskyQR (``passes`` = 1) or CholeskyQR2 (2) (Fukaya, Nakatsukasa, Yanagisawa & Yamamoto,
    ScalA 2014; Yamamoto et al., ETNA 44 (2015)): per pass R = chol(V^T V)^T, Q = V R^-1;
    diag(R) = diag(R2) diag(R1).

    One matrix product, one k x k Cholesky and one triangular solve per
    pass: on a GPU mostly GEMM, far faster than Householder for d >> k and
    than batched Householder for many small frames.  float32 frames are
    factorised in float64 (a float64 GEMM on O(d k) data, cheap next to the
    tangent product) and Q is rounded back, so they get float64's range.

    Accuracy.  Each pass is columnwise backward stable in the sense the
    exponents need: the triangular solve gives Q R = V + dV with
    |dV_j| <~ eps |V_j| for every column j, so span(Q[:, :i]) =
    span(V[:, :i]) to rounding and the product of the R factors telescopes
    (J_T ... J_1 Q_0 = Q_T R_T ... R_1: the sum of ln R_ii over a run is
    exact up to ln vol(Q_T[:, :i]), a boundary term).  What one pass loses
    is orthogonality: ||Q^T Q - I|| ~ eps cond(V)^2 (the Gram matrix's
    rounding, relative to its smallest eigenvalue), which a second pass
    removes (O(eps), Yamamoto et al. 2015).  A frame that is not
    orthonormal to delta changes the log growth of the next interval by
    O(delta) and the run's sum by O(delta) in all (the boundary term), never
    delta per renormalisation: tests/test_linalg.py checks this on 400
    renormalisations of frames near the limit below.
    ``ok`` (B,): False for a frame where this cannot be guaranteed (a
    Cholesky breakdown, or max/min diag(R1), a lower bound of cond(V), above
    eps^-1/2 / 10, so delta <~ 1e-2, or a non-finite result); the caller
    redoes those frames another way.
    """
    dtype = V.dtype
    if dtype == torch.float32:  # Gram and Cholesky in float64: stable up to cond ~1e8, not 3e3
        V = V.to(torch.float64)
    eps = torch.finfo(V.dtype).eps
    L, info = torch.linalg.cholesky_ex(V.transpose(-2, -1) @ V)
    diag = torch.diagonal(L, dim1=-2, dim2=-1)
    ok = (info == 0) & (diag.max(dim=-1).values < (0.1 / eps ** 0.5) * diag.min(dim=-1).values)
    # Q = V L^-T: solve Q L^T = V from the right
    Q = torch.linalg.solve_triangular(L.transpose(-2, -1), V, upper=True, left=False)
    for _ in range(passes - 1):
        L, info = torch.linalg.cholesky_ex(Q.transpose(-2, -1) @ Q)
        Q = torch.linalg.solve_triangular(L.transpose(-2, -1), Q, upper=True, left=False)
        diag = diag * torch.diagonal(L, dim1=-2, dim2=-1)
        ok = ok & (info == 0)
    ok = ok & torch.isfinite(diag).all(dim=-1)
    return Q.to(dtype), diag, ok


def _householder(V: torch.Tensor):
    """Householder QR (LAPACK geqrf / cuSOLVER) with the signs fixed: Q (B, d, k) and diag(R) >= 0."""
    Q, R = torch.linalg.qr(V, mode="reduced")
    diag = torch.diagonal(R, dim1=-2, dim2=-1)
    sign = torch.where(diag < 0, -1.0, 1.0).to(V.dtype)
    return Q * sign.unsqueeze(-2), diag.abs()


def _fallback(V: torch.Tensor):
    """QR of frames CholeskyQR cannot take: Householder on the CPU or for wide frames;
    on CUDA with k <= 64, modified Gram-Schmidt twice (batched vector sweeps; "twice is
    enough", Giraud, Langou & Rozloznik 2005), since batched small Householder QRs run one
    after another there."""
    if V.is_cuda and V.shape[-1] <= 64:
        Q1, d1, _ = _mgs(V)
        Q, d2, _ = _mgs(Q1)
        return Q, d1 * d2
    return _householder(V)


# CPU: modified Gram-Schmidt for frames of dimension d <= MGS_MAX_DIM.  Measured on a 2-core
# x86 machine, float64, d = k: 0.12-0.17x of LAPACK's batched Householder time at B = 4096
# (d = 2..6), 0.6x at B = 256, but 1.0-1.9x at B <= 16 for d = 2..4 (3x for d = 6).  The choice
# depends on d only, never on B, so a trajectory's bits do not depend on the batch it runs in.
MGS_MAX_DIM = 4


def auto_method(V: torch.Tensor) -> str:
    """The QR method 'auto' picks for frames V (B, d, k).

    CUDA: CholeskyQR in one pass (batched GEMM and potrf; batched
    Householder runs one small factorisation after another there, 0.3 s for
    4096 frames of 2 x 2 on an H100, measured).  One pass, not two: the
    second restores Q's orthogonality, which the exponents do not need (see
    :func:`_cholqr`), at the cost of a second GEMM, Cholesky and triangular
    solve, the bulk of a full-spectrum step at d = 1024 (the last H100
    table, with CholeskyQR2: 2.7 ms a step, of which the tangent product's
    2.1 GFLOP take 0.03 ms at the nominal peak).  Not measured on a GPU
    yet with one pass.  CPU: modified Gram-Schmidt for small frames
    (d <= MGS_MAX_DIM: Henon, Lorenz-63, Rossler, where Householder's
    per-frame LAPACK call dominates a batched step), Householder otherwise.
    """
    if V.is_cuda:
        return "cholqr"
    return "mgs" if V.shape[1] <= MGS_MAX_DIM else "householder"


def qr_positive(V: torch.Tensor, method: str = "householder"):
    """Re-orthonormalise a batch of frames V (B, d, k) = Q R with diag(R) > 0.

    Returns ``Q`` (B, d, k) and ``log_growth`` = ln|R_ii| (B, k) in float64
    (the growth of the i-th Gram-Schmidt direction since the last step).
    The sign fix keeps Q continuous from step to step, so the frame converges
    to the backward Lyapunov vectors.  ``householder``: Householder
    reflections, torch.linalg.qr (LAPACK geqrf / cuSOLVER); for k = 1 the
    same result is simply v / |v|.  ``mgs``: modified Gram-Schmidt, k
    batched column sweeps (orthogonality degrades like cond(V) eps, fine for
    frames re-orthonormalised often; diag(R) is as accurate as
    Householder's, Bjorck & Paige, SIAM J. Matrix Anal. Appl. 13 (1992));
    frames with cond(V) beyond MGS_MAX_DELTA / eps, collapsed or overflowed
    are redone with Householder (see :func:`_mgs`).
    ``auto`` (the default of the estimators): see :func:`auto_method`.
    A zero R_ii (a frame collapsed by a singular Jacobian) gives -inf, which
    the caller reports.  ``cholqr`` and ``cholqr2``: CholeskyQR in one pass
    or two (see :func:`_cholqr`; one pass leaves Q orthonormal only to
    eps cond(V)^2, which moves the run's sums by a boundary term, not per
    step); the frames too ill-conditioned for it are redone by
    :func:`_fallback` (Householder, or Gram-Schmidt twice on CUDA).
    """
    Q, log_growth, ok = qr_unchecked(V, method)
    if ok is not None and not bool(ok.all()):  # a host synchronisation on CUDA (see qr_unchecked)
        Q, log_growth = redo_frames(V, Q, log_growth, ok, method)
    return Q, log_growth


def qr_unchecked(V: torch.Tensor, method: str = "householder"):
    """:func:`qr_positive` without redoing the frames its method cannot take: Q, log_growth and
    ``ok`` (B,) bool, False where a frame must be redone by :func:`redo_frames` (None for
    Householder and k = 1, which take every frame).

    Deciding whether any frame needs redoing reads ``ok`` on the host, which on CUDA waits for
    the device to finish; a caller that checks many renormalisations at once (see
    :meth:`suite.estimators.qr.QREstimator._phase`) calls this and looks at ``ok`` later.
    """
    if method not in QR_METHODS:
        raise ValueError(f"invalid method={method!r}: allowed {QR_METHODS}")
    if method == "auto":
        method = auto_method(V)
    k = V.shape[-1]
    if k == 1:
        r = torch.linalg.vector_norm(V, dim=-2)  # (B, 1)
        return V / r.unsqueeze(-1), torch.log(r.to(torch.float64)), None
    if method == "householder":
        Q, diag = _householder(V)
        return Q, torch.log(diag.to(torch.float64)), None
    Q, diag, ok = _mgs(V) if method == "mgs" else _cholqr(V, passes=1 if method == "cholqr" else 2)
    return Q, torch.log(diag.to(torch.float64)), ok


def redo_frames(V: torch.Tensor, Q: torch.Tensor, log_growth: torch.Tensor, ok: torch.Tensor, method: str):
    """Q and log_growth with the frames where ``ok`` is False redone: after Gram-Schmidt (too
    ill-conditioned, collapsed or overflowed) by Householder, whose scaled norms keep Q
    orthonormal and give -inf for a collapsed frame; after CholeskyQR by :func:`_fallback`."""
    if method == "auto":
        method = auto_method(V)
    bad = torch.nonzero(~ok).flatten()
    Qb, db = (_householder if method == "mgs" else _fallback)(V[bad])
    return (Q.index_copy(0, bad, Qb.to(Q.dtype)),
            log_growth.index_copy(0, bad, torch.log(db.to(torch.float64))))


def log_condition_limit(method: str, dtype: torch.dtype) -> float:
    """ln of the largest max/min diag(R) a frame of ``dtype`` can have before ``method`` hands it on.

    'cholqr' and 'cholqr2': 0.1 / sqrt(eps) of float64 (their Gram matrix is float64 for
    either dtype; :func:`_cholqr`), 15.7.  'mgs': MGS_MAX_DELTA / eps of the frame's dtype
    (:func:`_mgs`; 26.8 in float64, 6.7 in float32).  'householder': no limit (inf).  A frame
    beyond the limit is still factorised correctly, by the fallback, at a higher cost.
    """
    if method in ("cholqr", "cholqr2"):
        return math.log(0.1 / torch.finfo(torch.float64).eps ** 0.5)
    if method == "mgs":
        return math.log(MGS_MAX_DELTA / torch.finfo(dtype).eps)
    if method == "householder":
        return math.inf
    raise ValueError(f"invalid method={method!r}: allowed {QR_METHODS[1:]} (resolve 'auto' with auto_method)")
