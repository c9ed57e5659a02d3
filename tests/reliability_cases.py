"""Every bad input and fault the reliability tests try, and what the suite does: one table.

tests/test_reliability_cases.py runs each case; results/reliability.md is this table rendered
(``python tests/reliability_cases.py > results/reliability.md``), and a test checks that the
committed file is up to date, so the table cannot drift from what is tested.

A case is API (a call that must raise the named exception with the named fragments in its
message) or CLI (``lyapbench`` arguments that must exit with the named status and print the
fragments on stderr); ``{tmp}`` in CLI arguments is a fresh folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import torch

import reference_systems as rs
from suite import estimators


@dataclass
class Case:
    category: str
    tried: str
    does: str
    call: Union[Callable[[Path], object], Sequence[str]]  # API callable(tmp) or CLI argv
    expect: Union[type, int]  # exception class (API) or exit status (CLI)
    fragments: List[str] = field(default_factory=list)
    setup: Optional[Callable[[Path], None]] = None  # CLI cases: prepare files under tmp

    @property
    def kind(self) -> str:
        return "CLI" if isinstance(self.expect, int) else "API"


def _qr(system, steps=100, **kw):
    return estimators.get("qr").estimate(system, steps, **kw)


def _user_map(name, step, dim=1, **kw):
    return rs.Map(name, step, dim, sample_initial=lambda batch, g: 0.1 + 0.8 * g.uniform(dim), **kw)


def _corrupt_baseline(tmp: Path) -> None:
    (tmp / "base").mkdir(parents=True)
    (tmp / "base" / "run.json").write_text('{"grid": {"systems": "henon"')


def _baseline_without_table(tmp: Path) -> None:
    import json
    (tmp / "base").mkdir(parents=True)
    (tmp / "base" / "run.json").write_text(json.dumps({"grid": {"systems": "henon"}}))


def _unwritable(tmp: Path) -> None:
    (tmp / "ro").mkdir()
    (tmp / "ro" / "file").write_text("")  # a file where a folder must go: unwritable for any user, root too


def _raising_plugin(tmp: Path) -> None:
    (tmp / "raising_plugin.py").write_text(
        "from suite.estimators import QREstimator\n"
        "class Raising(QREstimator):\n"
        "    name = 'raising'\n"
        "    def _estimate(self, system, cfg):\n"
        "        raise RuntimeError('deliberate failure inside estimate')\n")


def _nan_plugin(tmp: Path) -> None:
    (tmp / "nan_plugin.py").write_text(
        "import numpy as np\n"
        "from suite.core.result import LyapunovResult\n"
        "class NaNs:\n"
        "    name = 'nans'\n"
        "    def estimate(self, system, steps, **kw):\n"
        "        return LyapunovResult([np.nan], [0.1], [[np.nan]], np.zeros((0, 1)), np.zeros(0), 0.0)\n")


def _corrupt_reference(tmp: Path):
    import os
    import tasks
    folder = tmp / "refs"
    folder.mkdir()
    (folder / "rnn__tanh-copy-h16-end-v1.json").write_text("{ not json")
    old = os.environ.get("LYAPBENCH_REFERENCES")
    os.environ["LYAPBENCH_REFERENCES"] = str(folder)
    try:
        tasks.build("rnn/tanh-copy-h16-end-v1")
    finally:
        if old is None:
            del os.environ["LYAPBENCH_REFERENCES"]
        else:
            os.environ["LYAPBENCH_REFERENCES"] = old


A = "bad input (API)"
C = "bad input (command line; usage errors exit 2)"
R = "faults during a run"

CASES: List[Case] = [
    # ---- names -------------------------------------------------------------------------------------
    Case(A, "unknown system name", "UnknownNameError with close matches and the list",
         lambda t: rs.get("henonn"), KeyError, ["unknown system 'henonn'", "Did you mean 'henon'"]),
    Case(A, "unknown estimator name", "UnknownNameError with close matches",
         lambda t: estimators.get("qrr"), KeyError, ["unknown estimator 'qrr'", "Did you mean 'qr'"]),
    Case(A, "unknown task id", "UnknownNameError with close matches",
         lambda t: __import__("tasks").get("rnn/gru-xor-h65-end-v1"), KeyError,
         ["unknown task", "Did you mean 'rnn/gru-xor-h64-end-v1'"]),
    Case(A, "unknown system parameter", "names the parameter and the allowed ones",
         lambda t: rs.get("henon", c=1.0), ValueError, ["henon parameter 'c'", "['a', 'b']"]),
    Case(A, "a table without a column the reader needs", "names the file and the missing column",
         lambda t: (t.joinpath("x.csv").write_text("a,estimates\n1,2\n"),
                    __import__("suite.reporting.tables", fromlist=["read_rows"]).read_rows(t / "x.csv", ["a", "estimate"])),
         ValueError, ["x.csv", "'estimate'", "did you mean 'estimates'"]),
    # ---- parameters out of range -------------------------------------------------------------------
    Case(A, "logistic r outside (0, 4]", "InvalidArgumentError naming r and its range",
         lambda t: rs.get("logistic", r=4.5), ValueError, ["r=4.5", "(0, 4]"]),
    Case(A, "NaN time step", "names dt and the allowed range",
         lambda t: rs.get("lorenz63", dt=float("nan")), ValueError, ["dt=nan", "a finite number > 0"]),
    Case(A, "negative time step", "names dt and the allowed range",
         lambda t: rs.get("lorenz63", dt=-0.01), ValueError, ["dt=-0.01", "a finite number > 0"]),
    Case(A, "N <= 0", "names N", lambda t: rs.get("gaussian_products", N=0), ValueError,
         ["N=0", "an integer >= 1"]),
    Case(A, "k > dimension", "names k and 1..dim", lambda t: _qr(rs.get("henon"), k=3), ValueError,
         ["k=3", "1..2"]),
    Case(A, "steps <= 0", "names steps", lambda t: _qr(rs.get("henon"), steps=0), ValueError,
         ["steps=0", "an integer >= 1"]),
    Case(A, "transient < 0", "names transient", lambda t: _qr(rs.get("henon"), transient=-1), ValueError,
         ["transient=-1", "an integer >= 0"]),
    Case(A, "batch < 1", "names batch", lambda t: _qr(rs.get("henon"), batch=0), ValueError,
         ["batch=0", "an integer >= 1"]),
    Case(A, "a negative seed (it would alias seed 2**64 - 1)", "names seed and 0..2**63 - 1",
         lambda t: _qr(rs.get("henon"), seed=-1), ValueError, ["seed=-1", "0..2**63 - 1"]),
    Case(A, "unsupported dtype", "names dtype and the two allowed",
         lambda t: _qr(rs.get("henon"), dtype="float16"), ValueError, ["dtype='float16'", "'float64'"]),
    Case(A, "CUDA asked for where there is none", "DeviceError naming the device and what is available",
         lambda t: _qr(rs.get("henon"), device="cuda") if not torch.cuda.is_available() else
         _qr(rs.get("henon"), device="cuda:99"), ValueError, ["device="]),
    # ---- states ------------------------------------------------------------------------------------
    Case(A, "state of the wrong shape", "names x.shape and (B, d)",
         lambda t: rs.get("henon").step(torch.zeros(4, 3, dtype=torch.float64)), ValueError,
         ["x.shape=(4, 3)", "(B, 2)"]),
    Case(A, "state of the wrong dtype (float16)", "names x.dtype and the two allowed",
         lambda t: rs.get("henon").step(torch.zeros(4, 2, dtype=torch.float16)), ValueError,
         ["x.dtype=torch.float16", "torch.float32 or torch.float64"]),
    Case(A, "state that is not a tensor", "names x and what is allowed",
         lambda t: rs.get("henon").step([[0.0, 0.0]]), ValueError, ["torch.Tensor of shape (B, d)"]),
    Case(A, "tangent vectors of the wrong shape", "names V.shape",
         lambda t: rs.get("henon").tangent(torch.zeros(4, 2, dtype=torch.float64),
                                           torch.zeros(4, 3, 2, dtype=torch.float64)), ValueError,
         ["V.shape=(4, 3, 2)"]),
    Case(A, "a domain test returning the wrong shape", "names the system's domain and the shapes allowed",
         lambda t: _qr(_user_map("odd", lambda x: 0.5 * x, domain=lambda x: torch.ones(3, dtype=torch.bool))),
         ValueError, ["domain of system 'odd'", "(B,) or (B, 1) booleans"]),
    # ---- trajectories that go wrong ----------------------------------------------------------------
    Case(A, "a trajectory that diverges (x -> 4.5 x (1 - x))", "TrajectoryError with the trajectory and the step",
         lambda t: _qr(_user_map("blowup", lambda x: 4.5 * x * (1 - x)), batch=4), ArithmeticError,
         ["system 'blowup'", "diverged (non-finite state) at step"]),
    Case(A, "a trajectory that leaves its domain", "TrajectoryError: left the domain, with the step",
         lambda t: _qr(_user_map("leaver", lambda x: 4.2 * x * (1 - x), domain=lambda x: (x >= 0) & (x <= 1)),
                       batch=4), ArithmeticError, ["system 'leaver'", "left the domain", "at step"]),
    Case(A, "a flow with too large a time step (Lorenz-63, dt = 0.5)", "TrajectoryError naming the step",
         lambda t: _qr(rs.get("lorenz63", dt=0.5), batch=2), ArithmeticError, ["diverged", "at step"]),
    Case(A, "a non-finite Jacobian", "TrajectoryError: the tangent frame became non-finite",
         lambda t: _qr(_user_map("infjac", lambda x: 0.5 * x, jacobian=lambda x: torch.full(
             (x.shape[0], 1, 1), float("inf"), dtype=x.dtype)), batch=2), ArithmeticError,
         ["non-finite", "at step 1"]),
    Case(A, "a singular Jacobian", "TrajectoryError: the frame degenerated (ln 0 = -inf), never -inf as a value",
         lambda t: _qr(rs.Map("zero", lambda x: 0 * x, 2), batch=2), ArithmeticError,
         ["degenerated", "singular"]),
    Case(A, "an estimator that returns NaN exponents", "LyapunovResult refuses it: never a silent NaN",
         lambda t: __import__("suite.core.result", fromlist=["LyapunovResult"]).LyapunovResult(
             [float("nan")], [0.1], [[float("nan")]], [[0.0]], [1.0], 0.0), ValueError,
         ["finite exponents and standard errors only"]),
    Case(A, "a corrupt task reference file", "InvalidArgumentError naming the file and the command that "
         "regenerates it (on the command line: exit 2)", _corrupt_reference, ValueError,
         ["rnn__tanh-copy-h16-end-v1.json", "unreadable or corrupt",
          "lyapbench tasks reference --tasks rnn/tanh-copy-h16-end-v1 --force"]),
    # ---- command line ------------------------------------------------------------------------------
    Case(C, "unknown --systems name", "exit 2, did you mean",
         ["validate", "--systems", "henonn", "--no-write"], 2, ["unknown system 'henonn'", "Did you mean"]),
    Case(C, "unknown --estimators name", "exit 2, did you mean",
         ["compare", "--systems", "henon", "--estimators", "qrr", "--no-write"], 2, ["Did you mean 'qr'"]),
    Case(C, "unknown --tasks pattern", "exit 2 naming the pattern",
         ["validate", "--tasks", "rnn/nosuch*", "--no-write"], 2, ["rnn/nosuch*"]),
    Case(C, "malformed system spec", "exit 2 with the accepted form",
         ["validate", "--systems", "lorenz63(dt=)", "--no-write"], 2, ["name(param=value, ...)"]),
    Case(C, "--steps 0", "exit 2 naming --steps",
         ["compare", "--systems", "henon", "--steps", "0", "--no-write"], 2, ["--steps=0"]),
    Case(C, "--batch 0", "exit 2 naming --batch",
         ["compare", "--systems", "henon", "--batch", "0", "--no-write"], 2, ["--batch=0"]),
    Case(C, "a malformed --seeds list", "exit 2 naming --seeds",
         ["compare", "--systems", "henon", "--seeds", "0,x", "--no-write"], 2, ["--seeds='0,x'"]),
    Case(C, "an empty list (--estimators \"\")", "exit 2 naming the flag (never the defaults in silence)",
         ["compare", "--systems", "henon", "--estimators", "", "--no-write"], 2, ["--estimators=''"]),
    Case(C, "--seed -1", "exit 2 naming --seed and 0..2**63 - 1",
         ["validate", "--systems", "henon", "--seed", "-1", "--no-write"], 2, ["--seed=-1", "0..2**63 - 1"]),
    Case(C, "--system-file of another type than .py or module:attr", "exit 2 naming --system-file",
         ["validate", "--system-file", "my.txt", "--no-write"], 2, ["--system-file='my.txt'", ".py"]),
    Case(C, "--threads 0", "exit 2 naming --threads",
         ["validate", "--systems", "henon", "--threads", "0", "--no-write"], 2, ["--threads=0"]),
    Case(C, "--device cuda without CUDA", "exit 2 naming the device",
         ["validate", "--systems", "henon", "--device", "cuda" if not torch.cuda.is_available() else "cuda:99",
          "--no-write"], 2, ["device="]),
    Case(C, "a plug-in module that does not import", "exit 2 naming the module",
         ["compare", "--systems", "henon", "--estimators", "no_such_module:Est", "--no-write"], 2,
         ["importing 'no_such_module' failed"]),
    Case(C, "a plug-in that raises inside estimate", "an error row with the message; the grid goes on; exit 1",
         ["compare", "--quick", "--systems", "henon", "--estimators", "raising_plugin:Raising,qr",
          "--output-dir", "{tmp}/out"], 1, ["deliberate failure inside estimate"], setup=_raising_plugin),
    Case(C, "a plug-in that returns NaN exponents", "an error row saying why; exit 1",
         ["compare", "--quick", "--systems", "henon", "--estimators", "nan_plugin:NaNs", "--output-dir",
          "{tmp}/out"], 1, ["finite exponents and standard errors only"], setup=_nan_plugin),
    Case(C, "a missing regression baseline", "exit 2 naming the folder and --update-baseline",
         ["regress", "--baseline-dir", "{tmp}/nowhere", "--quiet"], 2, ["nowhere", "--update-baseline"]),
    Case(C, "a corrupt regression baseline", "exit 2: run.json is unreadable",
         ["regress", "--baseline-dir", "{tmp}/base", "--quiet"], 2, ["unreadable"], setup=_corrupt_baseline),
    Case(C, "a baseline missing a table", "exit 2 naming the missing table",
         ["regress", "--baseline-dir", "{tmp}/base", "--quiet"], 2, ["no accuracy.csv"],
         setup=_baseline_without_table),
    Case(C, "an unwritable results folder", "exit 2 naming the output directory, before any work",
         ["validate", "--systems", "henon", "--quick", "--output-dir", "{tmp}/ro/file/results"], 2,
         ["output directory"], setup=_unwritable),
    Case(C, "--resume with --no-write", "exit 2: nothing to resume into",
         ["validate", "--systems", "henon", "--resume", "--no-write"], 2, ["--resume"]),
    Case(C, "regress timing cells on a Dask cluster", "exit 2: timings beside busy workers are not comparable; "
         "suggests --no-throughput", ["regress", "--update-baseline", "--baseline-dir", "{tmp}/b", "--executor", "dask",
                                      "--no-write"], 2, ["--no-throughput"]),
    Case(C, "report on a folder that does not exist", "exit 2 naming --results-dir",
         ["report", "--results-dir", "{tmp}/none"], 2, ["--results-dir"]),
]

# faults checked by tests/test_reliability.py (processes killed for real), listed here for the table
FAULTS = [
    (R, "SIGKILL in the middle of a grid",
     "every finished cell is in the journal (one file per cell, written atomically); `--resume` runs only "
     "the rest, and the final table equals an uninterrupted run's (wall times apart)",
     "test_killed_grid_resumes_to_the_uninterrupted_table[SIGKILL]"),
    (R, "Ctrl-C (SIGINT) in the middle of a grid",
     "exit 130 with a summary: how many cells are saved, where, and `--resume`; resuming gives the same table",
     "test_killed_grid_resumes_to_the_uninterrupted_table[SIGINT]"),
    (R, "a cell that raises", "an `error` row with the message; the grid goes on; exit 1",
     "the plug-in cases above; tests/test_cli.py::test_error_cell_is_recorded_and_exits_1"),
    (R, "an unreadable journal file", "reported on stderr and the cell runs again (never trusted)",
     "test_journal_replays_a_result_exactly_and_reruns_an_unreadable_cell"),
    (R, "the same command twice, or its cells in another order",
     "bit-identical rows on the CPU in float64 (each cell seeds its own random streams)",
     "test_same_seed_gives_bit_identical_rows_in_any_cell_order"),
    (R, "a batch split into parts (seed=(s, first trajectory))",
     "bit-identical trajectories for every catalogue system except those declaring "
     "meta['batch_invariant'] = False (random_rnn, rate_network, the RNN and training-map tasks: a weight "
     "matrix shared across the batch, or vmapped products, go through BLAS calls whose blocking depends on "
     "the batch size); those agree to round-off",
     "test_a_split_batch_gives_the_same_trajectories, test_tasks_declare_that_a_split_batch_is_equal_to_round_off_only"),
]


def render() -> str:
    lines = ["# Reliability: what was tried, and what the suite does\n",
             "Generated from `tests/reliability_cases.py` (`python tests/reliability_cases.py > "
             "results/reliability.md`); `tests/test_reliability_cases.py` runs every row and checks that this "
             "file is current. API rows must raise the error named, with the quoted fragments in its message; "
             "command-line rows must exit with the status named and print the fragments.\n",
             "| # | category | what is tried | what the suite does | expected | message contains |",
             "|---|---|---|---|---|---|"]
    for n, c in enumerate(CASES, 1):
        expected = f"exit {c.expect}" if c.kind == "CLI" else c.expect.__name__
        frags = "; ".join(f"`{f}`" for f in c.fragments).replace("|", "\\|")
        lines.append(f"| {n} | {c.category} | {c.tried} | {c.does} | {expected} | {frags} |")
    lines += ["\n## Faults during long runs and determinism\n", "| what is tried | what the suite does | test |",
              "|---|---|---|"]
    lines += [f"| {tried} | {does} | `{test}` |" for _, tried, does, test in FAULTS]
    lines.append("\nNot tried here: a state on another device than the run's (no GPU on the test machines); "
                 "the CUDA path's errors are the same code as the CPU's.\n")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
