"""Refuse a user's model whose forward pass is random or changes the model (layers in training mode), or
that has no values to run (parameters on the meta device).

A System's step must be a function of the state (and of the generator the estimator passes), so that
the same seed gives the same numbers and two copies of a trajectory see the same map.  Dropout in
training mode draws its masks from torch's global random state, and batch normalisation in training
mode normalises with the batch's statistics and updates its running buffers at every call: neither is
such a function.  In eval mode both are fixed maps (dropout the identity, batch normalisation an affine
map with the running statistics), which is what :func:`tasks.from_module` and
:func:`tasks.training_map` analyse.
"""
from __future__ import annotations

from torch import nn

from suite.core.errors import InvalidArgumentError

#: the layer types whose training mode makes a forward pass random or stateful
TRAINING_MODE_LAYERS = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm,
                        nn.modules.instancenorm._InstanceNorm)


def check_eval_mode(argument: str, model: nn.Module) -> None:
    """Raise InvalidArgumentError naming ``argument`` if a submodule of ``model`` is a dropout layer with p > 0
    or a batch / instance normalisation using batch statistics, in training mode."""
    found = []
    for path, sub in model.named_modules():
        if not sub.training or not isinstance(sub, TRAINING_MODE_LAYERS):
            continue
        if isinstance(sub, nn.modules.dropout._DropoutNd) and sub.p == 0:
            continue
        if isinstance(sub, nn.modules.instancenorm._InstanceNorm) and not sub.track_running_stats:
            continue  # per-sample statistics in either mode: a deterministic map
        found.append(f"{path or type(model).__name__} ({type(sub).__name__})")
    if found:
        raise InvalidArgumentError(argument, ", ".join(found) + " in training mode",
                                   "a model in eval mode (call .eval() first): in training mode dropout draws its "
                                   "masks from torch's global random state and batch normalisation uses the "
                                   "batch's statistics and updates its buffers, so a step would not be a "
                                   "function of the state")


def check_materialised(argument: str, model: nn.Module) -> None:
    """Raise InvalidArgumentError naming ``argument`` if a parameter or buffer of ``model`` is on the meta device
    (shapes without values: it would build and fail only when run)."""
    empty = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if empty:
        raise InvalidArgumentError(argument, f"{', '.join(empty[:4])}{', ...' if len(empty) > 4 else ''} on the "
                                   "meta device", "a model whose parameters have values (load or initialise its "
                                   "weights, e.g. model.to_empty(device='cpu') and then its state_dict)")
