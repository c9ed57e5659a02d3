"""Eckmann-Kamphorst-Ruelle-Ciliberto: a Lyapunov spectrum from a scalar time series."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from reference_systems import System
from suite.core.args import check_choice, check_int
from suite.core.errors import InvalidArgumentError, SeriesError
from suite.core.result import LyapunovResult
from suite.estimators.base import GrowthAccumulator, RunConfig
from suite.estimators.delay import DelayEmbeddingEstimator
from suite.estimators.numerics.embedding import neighbours
from suite.estimators.numerics.linalg import qr_positive

REORTH_EVERY = 4   # local maps multiplied between QR steps
MAX_SPREAD = 25.0  # nats: a block whose growth factors spread wider is redone with a QR step per map


def n_terms(m: int, order: int) -> int:
    """Coefficients per output of a local model of ``order`` (1: linear, 2: plus quadratic monomials)."""
    return m + (m * (m + 1) // 2 if order == 2 else 0)


def local_maps(Y: np.ndarray, chain: np.ndarray, idx: np.ndarray, s: int, order: int = 2):
    """Least-squares local linear maps T_i (len(chain), m, m) at the chain points.

    For chain point i with neighbours j (rows of ``idx``, all present) and
    displacements u_j = Y_j - Y_i, v_j = Y_{j+s} - Y_{i+s}, solve

        order 1:  min_T      sum_j | v_j - T u_j |^2
        order 2:  min_{T,H}  sum_j | v_j - T u_j - H (u_j (x) u_j) |^2   (u (x) u: the m(m+1)/2 monomials)

    and return (T, degenerate): T the linear part (the model's Jacobian at
    Y_i), by a batched QR of the design matrix, and a mask of the chain points
    whose neighbourhood does not determine the model (a diagonal entry of R
    below 1e-12 of the largest; their T is not meaningful).
    """
    m = Y.shape[1]
    U = Y[idx] - Y[chain][:, None, :]                                 # (N, n, m)
    V = Y[idx + s] - Y[chain + s][:, None, :]                         # (N, n, m)
    D = U
    if order == 2:
        iu = np.triu_indices(m)
        D = np.concatenate([U, (U[:, :, :, None] * U[:, :, None, :])[:, :, iu[0], iu[1]]], axis=2)
    Q, R = np.linalg.qr(D)                                            # (N, n, p), (N, p, p)
    diag = np.abs(np.diagonal(R, axis1=1, axis2=2))
    bad = (diag <= 1e-12 * np.maximum(diag.max(axis=1), 1e-300)[:, None]).any(axis=1)
    R = R.copy()
    R[bad] = np.eye(R.shape[1])                                       # placeholder: the caller refits these
    X = np.linalg.solve(R, np.swapaxes(Q, 1, 2) @ V)                  # (N, p, m)
    return np.swapaxes(X[:, :m, :], 1, 2), bad


class EckmannEstimator(DelayEmbeddingEstimator):
    """A Lyapunov spectrum from local maps fitted to the data (a time-series method).

    Method (Eckmann, Kamphorst, Ruelle & Ciliberto, Phys. Rev. A 34, 4971
    (1986); Sano & Sawada, Phys. Rev. Lett. 55, 1082 (1985)): along the chain
    of embedded points i_n = n s, fit the m x m matrix T_n that best maps the
    displacements of the ``n_neighbors`` nearest neighbours s samples ahead,
    Y_{j+s} - Y_{i_n+s} ~ T_n (Y_j - Y_{i_n}); with ``order=2`` the local model
    also has the quadratic terms and T_n is its linear part (Brown, Bryant &
    Abarbanel, Phys. Rev. A 43, 2787 (1991)), which removes the curvature bias
    of the contracting directions.  The products of the T_n are
    re-orthonormalised with the suite's QR, lambda_i = sum_n ln R_{n,ii} /
    (N s Delta), Delta = sample_every * dt: natural log, per step for maps, per
    unit time for flows.  Returns min(k, m) exponents; with m larger than the
    attractor needs, the extra ones are spurious.  Standard error across series,
    or from batch means over 20 blocks of the chain (batch = 1).

    ``meta['method_bias']``: (max - min) / 2 of each exponent over half, the
    given and twice ``n_neighbors``.

    Parameters
    ----------
    m, lag, theiler, coordinate, sample_every
        Embedding and observation (:mod:`suite.estimators.delay`).
    order : 1 or 2, default 2
        Local model: linear (Eckmann et al.) or quadratic (its linear part is T).
    n_neighbors : int or None, default None
        Neighbours per fit, at least p + 1 (p coefficients per row); None: 3 p.
    evolve : int >= 1 or None, default None
        Samples s between chain points; None: the lag.

    Measured behaviour (Henon, Lorenz-63): docs/estimators.md.
    """

    name = "eckmann"

    def __init__(self, m: int = 3, lag: Optional[int] = None, theiler: Optional[int] = None,
                 coordinate: int = 0, sample_every: int = 1, order: int = 2, n_neighbors: Optional[int] = None,
                 evolve: Optional[int] = None):
        self._init_embedding(m, lag, theiler, coordinate, sample_every)
        check_choice("order", order, (1, 2), "1 (local linear model) or 2 (local quadratic model)")
        self.order = int(order)
        p = n_terms(self.m, self.order)
        self.n_neighbors = check_int("n_neighbors", n_neighbors, p + 1, allow_none=True,
                                     unit=f" (p + 1 = {p + 1} at least: a local model of order {self.order} in "
                                          f"m={self.m} has p = {p} coefficients per row)")
        self.evolve = check_int("evolve", evolve, 1, allow_none=True, unit=" (samples)")

    def _local_maps(self, Y: np.ndarray, theiler: int, s: int, sizes):
        """({n_neighbors: maps (B, N, m, m)}, {n_neighbors: enlarged fits}) along the chain i_n = n s.

        A chain point whose neighbourhood does not determine the local model
        (e.g. all its neighbours on one line) is refitted with the next larger
        neighbourhood size of ``sizes``; if even the largest fails, SeriesError.
        """
        B, M, m = Y.shape
        chain = np.arange(0, M - s, s)
        sizes = sorted(sizes)
        maps = {size: np.empty((B, chain.size, m, m)) for size in sizes}
        enlarged = {size: 0 for size in sizes}
        for b in range(B):
            idx, _ = neighbours(Y[b], sizes[-1], theiler, candidates=M - s)
            nb = idx[chain]
            if (nb < 0).any():
                raise SeriesError(f"series {b}: fewer than {sizes[-1]} neighbours outside the Theiler window "
                                  f"({theiler} samples) for some delay vectors; use a longer series or "
                                  "fewer neighbours")
            for n_i, size in enumerate(sizes):
                T, bad = local_maps(Y[b], chain, nb[:, :size], s, self.order)
                for larger in sizes[n_i + 1:]:
                    if not bad.any():
                        break
                    rows = np.nonzero(bad)[0]
                    enlarged[size] += rows.size
                    T[rows], still = local_maps(Y[b], chain[rows], nb[rows, :larger], s, self.order)
                    bad[rows] = still
                if bad.any():
                    i = int(chain[np.nonzero(bad)[0][0]])
                    raise SeriesError(
                        f"series {b}: the {sizes[-1]} nearest neighbours of delay vector {i} do not determine a "
                        f"local model of order {self.order} in dimension {m} (a rank-deficient fit): the delay "
                        "vectors satisfy an exact relation of degree <= order (m larger than the series needs, "
                        "e.g. Henon's x, for which m = 2 is exact), the series is too regular, or its points "
                        "are not distinct; lower m or order, or raise n_neighbors")
                maps[size][b] = T
        return maps, enlarged

    @staticmethod
    def _multiply(T: np.ndarray, kk: int, s: int, dt_sample: float, every: int = REORTH_EVERY):
        """Multiply the maps along the chain with a QR step every ``every`` maps -> GrowthAccumulator.

        The products of ``every`` consecutive maps are formed first (vectorised
        over the chain); if a block's growth factors then spread over more than
        MAX_SPREAD nats (the lower directions would drown in round-off), the
        chain is multiplied again with a QR step after every map.
        """
        B, N, m, _ = T.shape
        n_blocks = -(-N // every)
        P = np.broadcast_to(np.eye(m), (B, n_blocks, m, m)).copy()
        for q in range(every):
            j = np.arange(n_blocks) * every + q
            inside = j < N
            P[:, inside] = T[:, j[inside]] @ P[:, inside]
        Pt = torch.from_numpy(P)
        acc = GrowthAccumulator(B, kk, N * s, every * s, dt_sample, "cpu")
        Q = torch.eye(m, kk, dtype=torch.float64).expand(B, m, kk).contiguous()
        for n in range(n_blocks):
            Q, log_growth = qr_positive(Pt[:, n] @ Q)
            if not bool(torch.isfinite(log_growth).all()):
                raise SeriesError(f"the product of the fitted local maps degenerated at chain point "
                                  f"{n * every} (a singular local map): the neighbourhoods do not resolve the "
                                  "dynamics")
            if every > 1 and kk > 1 and float((log_growth[:, 0] - log_growth[:, -1]).max()) > MAX_SPREAD:
                return EckmannEstimator._multiply(T, kk, s, dt_sample, every=1)
            acc.add(log_growth, min((n + 1) * every, N) * s)
        return acc

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        x, Y, dt_sample, lag, theiler, emb = self._embedded_series(system, cfg)
        s = self.evolve if self.evolve is not None else lag
        B, M, m = Y.shape
        kk = min(cfg.k, m)
        p = n_terms(m, self.order)
        n_nb = self.n_neighbors if self.n_neighbors is not None else 3 * p
        if M - s < 2 * s:
            raise InvalidArgumentError("steps", cfg.steps, f"a series spanning at least 2 evolution steps "
                                       f"(evolve = {s} samples) beyond the embedding window")
        sizes = sorted({max(p + 1, n_nb // 2), n_nb, 2 * n_nb})
        maps, enlarged = self._local_maps(Y, theiler, s, sizes)
        res = self._multiply(maps[n_nb], kk, s, dt_sample).result()
        alts = {size: (res.exponents if size == n_nb else
                       self._multiply(maps[size], kk, s, dt_sample).result().exponents) for size in sizes}
        stack = np.stack(list(alts.values()))
        method_bias = (stack.max(axis=0) - stack.min(axis=0)) / 2.0
        res.meta.update({
            "embedding": emb, "evolve": s, "n_neighbors": n_nb, "sampling_interval": dt_sample,
            "chain_points": int(np.arange(0, M - s, s).size), "method_bias": method_bias,
            "method_bias_alternatives": {int(size): v.tolist() for size, v in alts.items()},
            "degenerate_fits_enlarged": {int(size): int(v) for size, v in enlarged.items()},
            "local_model": ("linear" if self.order == 1 else "quadratic (T = its linear part)")
                           + ", least squares on neighbour displacements s samples ahead, no intercept",
        })
        return res
