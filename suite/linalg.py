"""The one QR re-orthonormalisation step shared by every tangent estimator."""
from __future__ import annotations

import torch

QR_METHODS = ("householder", "mgs")


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

def qr_positive(V: torch.Tensor, method: str = "householder"):
    """Re-orthonormalise a batch of frames V (B, d, k) = Q R with diag(R) > 0.

    Returns ``Q`` (B, d, k) and ``log_growth`` = ln|R_ii| (B, k) in float64
    (the growth of the i-th Gram-Schmidt direction since the last step).
    The sign fix keeps Q continuous from step to step, so the frame converges
    to the backward Lyapunov vectors.  ``householder``: Householder
    reflections, torch.linalg.qr (LAPACK geqrf / cuSOLVER); for k = 1 the
    same result is simply v / |v|.  ``mgs``: modified Gram-Schmidt, k
    batched column sweeps (orthogonality degrades like cond(V) eps, fine for
    frames re-orthonormalised often).  A zero R_ii (a frame collapsed by a singular Jacobian)
    gives -inf, which the caller reports.
    """
    if method not in QR_METHODS:
        raise ValueError(f"invalid method={method!r}: allowed {QR_METHODS}")
    k = V.shape[-1]
    if k == 1:
        r = torch.linalg.vector_norm(V, dim=-2)  # (B, 1)
        return V / r.unsqueeze(-1), torch.log(r.to(torch.float64))
    if method == "mgs":
        Q, diag = _mgs(V)
        return Q, torch.log(diag.to(torch.float64))
    Q, R = torch.linalg.qr(V, mode="reduced")
    diag = torch.diagonal(R, dim1=-2, dim2=-1)
    sign = torch.where(diag < 0, -1.0, 1.0).to(V.dtype)
    return Q * sign.unsqueeze(-2), torch.log(diag.abs().to(torch.float64))
