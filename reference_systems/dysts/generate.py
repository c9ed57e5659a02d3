"""Write reference_systems/dysts/catalogue.json from the installed dysts: what the flows need at run time.

    python -m reference_systems.dysts.generate        # needs dysts (the ``peers`` extra)

For each ordinary-differential-equation flow of dysts's ``data/chaotic_attractors.json`` (delay equations are out
of scope): dimension, default parameters, initial condition, dysts's sampling step and dominant period, the
attractor's mean and standard deviation (the scale of the initial perturbations), dysts's stored largest exponent
and spectrum (compared, never used as references), its citation and whether dysts marks it non-autonomous; and
the dysts version it was read from.
"""
from __future__ import annotations

import json
import os
from importlib import metadata, resources

#: the table, next to this module
PATH = os.path.join(os.path.dirname(__file__), "catalogue.json")
#: fields copied from dysts's entries (renamed: ours <- dysts's)
FIELDS = {"dim": "embedding_dimension", "parameters": "parameters", "initial_conditions": "initial_conditions",
          "dysts_dt": "dt", "period": "period", "mean": "mean", "std": "std",
          "stored_lambda1": "maximum_lyapunov_estimated", "stored_spectrum": "lyapunov_spectrum_estimated",
          "nonautonomous": "nonautonomous", "citation": "citation", "description": "description"}


def table() -> dict:
    """The catalogue read from the installed dysts."""
    with resources.files("dysts").joinpath("data/chaotic_attractors.json").open() as handle:
        entries = json.load(handle)
    flows = {name: {ours: entry.get(theirs) for ours, theirs in FIELDS.items()}
             for name, entry in sorted(entries.items()) if not entry.get("delay")}
    return {"dysts_version": metadata.version("dysts"), "source": "dysts/data/chaotic_attractors.json",
            "delay_equations_left_out": sorted(n for n, e in entries.items() if e.get("delay")), "flows": flows}


def main() -> None:
    data = table()
    with open(PATH, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
    print(f"wrote {PATH}: {len(data['flows'])} flows from dysts {data['dysts_version']}")


if __name__ == "__main__":
    main()
