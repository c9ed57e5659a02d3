"""``lyapbench spectrum``: the Lyapunov spectrum of a user's saved recurrent model, with its checks.

    lyapbench spectrum --module pkg.mod:factory [--checkpoint file.pt] [--inputs file.pt] [--k K] [--eps E]

The factory (a class or a function of no arguments, or a module instance) gives an ``nn.Module``; the
checkpoint is its ``state_dict``; the inputs file holds a tensor of input rows (samples x input size),
drawn i.i.d. per step and trajectory (none: an autonomous network).  The module is wrapped by
:func:`tasks.from_module` and measured by :func:`suite.studies.spectrum.measure`: the spectrum with
standard errors, lambda_1 confirmed by ``two_trajectory``, the sum rule where the whole spectrum is
computed, the Kaplan-Yorke dimension, and a figure of the running estimates.  Exit 1 when a check fails
(the disagreement is printed), 2 for bad usage.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import tasks
from suite.cli.options import EXIT_FAIL, EXIT_OK, add_single_run, set_threads
from suite.core.args import check_int, check_seed
from suite.core.devices import resolve_device, resolve_dtype
from suite.core.errors import InvalidArgumentError
from suite.core.registry import load_object
from suite.reporting.plots import history_figure
from suite.reporting.tables import atomic_write, markdown, text_table, write_csv
from suite.studies.spectrum import measure

COLUMNS = ["index", "estimate", "stderr", "half_width", "T", "batch"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("spectrum", help="the spectrum of your own recurrent torch model (factory, "
                                               "checkpoint, inputs), with lambda_1 confirmed and the sum rule")
    p.add_argument("--module", required=True, metavar="pkg.mod:factory",
                   help="a class or function of no arguments returning the nn.Module (or the module itself)")
    p.add_argument("--checkpoint", metavar="FILE", help="a state_dict saved with torch.save")
    p.add_argument("--inputs", metavar="FILE", help="a tensor of input rows (samples x input size) saved with "
                                                    "torch.save (default: none, an autonomous network)")
    p.add_argument("--input-noise", type=float, help="std of Gaussian noise added to every input")
    p.add_argument("--k", type=int, help="number of exponents, largest first (default: all)")
    p.add_argument("--eps", type=float, help="run to this accuracy instead of --steps x --batch: every exponent "
                                             "within EPS of the truth with probability 0.95 "
                                             "(suite.estimate_to_accuracy)")
    p.add_argument("--steps", type=int, default=2_000, help="steps per trajectory (default 2000)")
    p.add_argument("--transient", type=int, default=500, help="transient steps (default 500)")
    p.add_argument("--batch", type=int, default=16, help="trajectories (default 16)")
    p.add_argument("--seed", type=int, default=0)
    add_single_run(p)
    return p


def load_module(spec: str, checkpoint) -> torch.nn.Module:
    if ":" not in spec:
        raise InvalidArgumentError("--module", spec, "pkg.module:factory (a class, function or nn.Module)")
    try:
        obj = load_object(spec)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError("--module", spec, exc.allowed) from exc
    module = obj if isinstance(obj, torch.nn.Module) else obj() if callable(obj) else None
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError("--module", spec, f"a factory returning a torch.nn.Module (got "
                                   f"{type(module).__name__})")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise InvalidArgumentError("--checkpoint", checkpoint, "an existing file saved with torch.save")
        try:
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
            raise InvalidArgumentError("--checkpoint", checkpoint, f"the module's state_dict ({type(exc).__name__}: "
                                       f"{exc})") from exc
    return module


def load_inputs(path):
    if path is None:
        return None
    if not Path(path).is_file():
        raise InvalidArgumentError("--inputs", path, "an existing file holding a tensor saved with torch.save")
    inputs = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(inputs, torch.Tensor):
        raise InvalidArgumentError("--inputs", path, f"a tensor (got {type(inputs).__name__})")
    return inputs


def run(args) -> int:
    set_threads(args.threads)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    seed = check_seed("--seed", args.seed)
    k = check_int("--k", args.k, 1, allow_none=True, allowed="an integer >= 1 (default: all)")
    system = tasks.from_module(load_module(args.module, args.checkpoint), load_inputs(args.inputs),
                               input_noise=args.input_noise)
    if k is not None and k > system.dim:
        raise InvalidArgumentError("--k", k, f"at most the state's dimension {system.dim}")
    out = measure(system, k=k, steps=args.steps, transient=args.transient, batch=args.batch, eps=args.eps,
                  seed=seed, device=device, dtype=dtype)
    rows = out.rows()
    print(f"{system.label}: {system.dim} state variables, {len(rows)} exponents (natural log, per step), "
          f"T = {rows[0]['T']:g}, {rows[0]['batch']} trajectories")
    print(text_table(rows, COLUMNS))
    print(f"Kaplan-Yorke dimension: {out.kaplan_yorke if out.kaplan_yorke is not None else 'undetermined (k < d)'}")
    if out.eps_reached is False:
        print(f"--eps {args.eps:g} not reached within the run budget: the widest half-width is "
              f"{max(r['half_width'] for r in rows):.3g}")
    for c in out.checks:
        print(f"{c['status'].upper():5s} {c['check']}: {c['message']}")
    if not args.no_write:
        folder = Path(args.output_dir)
        write_csv(rows, folder / "spectrum.csv", COLUMNS)
        atomic_write(folder / "spectrum.md", f"# Spectrum of {system.label}\n\n" + markdown(rows, COLUMNS)
                     + "\n\n" + "\n".join(f"* {c['status']} {c['check']}: {c['message']}" for c in out.checks) + "\n")
        res = out.result
        history_figure(res.times, res.history, res.meta.get("history_stderr"), folder / "spectrum.png",
                       f"running estimates: {system.label}")
        print(f"wrote {folder / 'spectrum.csv'}, {folder / 'spectrum.md'} and {folder / 'spectrum.png'}")
    return EXIT_OK if out.ok else EXIT_FAIL
