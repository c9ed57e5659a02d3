"""Deliberately wrong estimators, used as plug-ins (module:attr) by the compare tests."""
import torch

from suite.estimators import QREstimator


class Transposed(QREstimator):
    """Propagates tangents with J^T instead of J: the classic orientation bug."""
    name = "transposed"

    def _advance(self, system, x, Q, rng):
        eye = torch.eye(system.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1).contiguous()
        x_next, J = system.tangent(x, eye, rng)
        return x_next, J.transpose(1, 2) @ Q
