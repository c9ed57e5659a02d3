"""``lyapbench dysts``: the dysts catalogue's flows, their references from two routes, the table users want.

    lyapbench dysts references [--flows 'dysts/*'] [--budget standard|long|full|quick] [--force | --check |
                               --redo-jitcode | --redo-divergence | --redo-long | --redo-verdict]
                               [--executor dask --workers 2]
    lyapbench dysts table [--output-dir results]

``references`` computes each flow's record (:mod:`suite.studies.dysts_references`) and writes it at once under
``results/references/``; fresh records are skipped, so a stopped run resumes.  Flows run cheapest first (steps
per period times dimension), so a stopped run has done the most flows.  With ``--executor dask`` each flow is one
Dask task (a local cluster of ``--workers`` processes, one torch thread each, or ``--scheduler``).  ``table``
writes ``dysts_references.md`` / ``.csv``: a row per flow with the reference or the reason there is none, dysts's
stored values and how far they lie from ours.  ``--redo-jitcode`` recomputes route two (jitcode) and the verdict
of every selected record, keeping its route one, step check and divergence where they match the flow and budget
(:func:`~suite.studies.dysts_references.compute_flow`'s ``reuse``): the cheap route's rerun after a change to it;
``--redo-divergence`` recomputes the divergence and the verdict, keeping both routes; ``--redo-long`` reruns the
confirmation over 4 T (route two again, check (g)) and the verdict; ``--redo-verdict`` judges
every record again, keeping its numbers (after a change of the rule).
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Optional

import reference_systems as rs
from reference_systems import computed
from reference_systems.dysts.build import PREFIX, steps_per_period
from suite.cli.options import DEFAULT_OUTPUT, OUTPUT_HELP, add_executor, executor, set_threads
from suite.cli.references import refresh
from suite.core.errors import InvalidArgumentError
from suite.core.specs import split_flag
from suite.studies import dysts_references


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("dysts", help="the dysts flows: compute their references (two routes), write their "
                                            "table")
    p.add_argument("action", choices=["references", "table"],
                   help="references: compute missing or stale records (--force: all, --check: only report, exit 1 "
                        "if any is not fresh); table: dysts_references.md / .csv from the records")
    p.add_argument("--flows", default="dysts/*", help="comma-separated names or patterns (default: 'dysts/*')")
    p.add_argument("--budget", choices=sorted(dysts_references.BUDGETS), default=None,
                   help="references: run sizes (default: each flow's record's, else "
                        f"{dysts_references.DEFAULT_BUDGET!r}, the committed references; long: 600 periods, up to "
                        "600,000 steps; full: ten times longer; quick, smoke: trial runs)")
    p.add_argument("--force", action="store_true", help="references: recompute even fresh records")
    p.add_argument("--check", action="store_true", help="references: compute nothing, report freshness")
    p.add_argument("--redo-jitcode", action="store_true",
                   help="references: recompute jitcode's route and the verdict of every record, keeping route one")
    p.add_argument("--redo-divergence", action="store_true",
                   help="references: recompute the divergence <div f> and the verdict of every record, keeping both "
                        "routes")
    p.add_argument("--redo-long", action="store_true",
                   help="references: rerun the confirmation over 4 T (route two) and the verdict of every record, "
                        "keeping the rest")
    p.add_argument("--redo-verdict", action="store_true",
                   help="references: judge every record again (after a change of the rule), keeping its numbers")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--output-dir", default=DEFAULT_OUTPUT, help=OUTPUT_HELP)
    add_executor(p)
    return p


def flows(specs: str) -> list:
    names = []
    for spec in split_flag(specs, "--flows") or []:
        matched = rs.names(spec) if any(c in spec for c in "*?[") else [spec]
        names += [n for n in matched if n not in names]
    wrong = [n for n in names if rs.family(n) != "dysts"]
    if wrong or not names:
        raise InvalidArgumentError("--flows", ", ".join(wrong) or specs, "dysts flows or patterns, e.g. 'dysts/*'")
    return [rs.get(n) for n in names]


def run(args) -> int:
    set_threads(args.threads)
    chosen = {f.name: f for f in flows(args.flows)}
    if args.action == "table":
        return dysts_references.write_table(list(chosen.values()), args.output_dir)

    redo = [flag for flag, on in (("jitcode", args.redo_jitcode), ("divergence", args.redo_divergence),
                                  ("long", args.redo_long), ("verdict", args.redo_verdict)) if on]
    if redo and (args.force or args.check or len(redo) > 1):
        raise InvalidArgumentError(f"--redo-{redo[0]}", "with " + ", ".join(
            f for f, on in (("--force", args.force), ("--check", args.check), (f"--redo-{redo[-1]}", len(redo) > 1))
            if on), "alone (it recomputes that part of every selected record)")

    def entry(name):
        budget, status = args.budget or dysts_references.budget_of(chosen[name]), dysts_references.status(chosen[name])
        return status, partial(compute, name, budget, redo[0] if redo else None, status)
    order = sorted(chosen, key=lambda n: (steps_per_period(n[len(PREFIX):]) * chosen[n].dim, n))  # cheapest first
    if redo:  # records with both routes; the others (none yet, no run, a failed route) are left as they are
        kept = [n for n in order if _complete(chosen[n])]
        for n in order:
            if n not in kept:
                print(f"{n}: left as it is (--redo-{redo[0]} keeps a record's routes; this flow's record has "
                      "not both)", file=sys.stderr)
        order = kept
    with executor(args) as ex:
        return refresh(order, entry, check=args.check, force=args.force or bool(redo),
                       summary=dysts_references.summary, executor=ex)


def _complete(flow) -> bool:
    record = computed.read(dysts_references.reference_key(flow))
    return bool(record) and {"lyapbench", dysts_references.second(record)} <= set(record.get("routes", {}))


def compute(name: str, budget: str, redo: Optional[str] = None, status: Optional[str] = None):
    """One flow's record and its path (a picklable call: it may run on a Dask worker); ``redo`` ('jitcode',
    'divergence', 'long' or 'verdict'): compute only that again, keeping the rest of the flow's record where it
    matches; an incomplete record goes on from what it has (stopped before jitcode's route: from route one; a
    reference not yet confirmed over 4 T: that check alone).  ``status``: the flow's record status where the caller
    has it (:func:`dysts_references.status`, a short run), computed here otherwise."""
    flow = rs.get(name)
    status = status if status is not None else dysts_references.status(flow)
    reuse = computed.read(dysts_references.reference_key(flow)) if redo or status.startswith("incomplete") else None
    if redo is None and status == dysts_references.UNCONFIRMED:
        redo = "long"
    record = dysts_references.compute_flow(flow, budget, reuse=reuse, redo=redo or "jitcode")
    return record, computed.reference_path(record["key"])
