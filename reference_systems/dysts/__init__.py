"""The dysts catalogue of chaotic flows (Gilpin, NeurIPS Datasets and Benchmarks 2021) as reference systems.

    import reference_systems as rs
    rs.names("dysts/*")                     # the family, listed on request (not in rs.names())
    flow = rs.get("dysts/Lorenz", rho=30)   # dysts's parameters as keywords, and dt

Every ordinary-differential-equation flow of dysts's catalogue (delay equations are out of scope) is written once
(``flows_*.py``, :mod:`.algebra`): the torch rendering drives the suite's RK4 and its autodiff tangent, the
symbolic rendering drives jitcode, so both routes integrate the same equations.  Parameters, initial conditions
and time scales come from ``catalogue.json``, generated from dysts (:mod:`.generate`, its version inside); dysts
itself is needed only to regenerate that table and for the test that checks every right-hand side against
dysts's own.  How each flow is built: :mod:`.build`.
"""
from __future__ import annotations

from functools import partial
from typing import List

from reference_systems.dysts import flows_a_c, flows_d_h, flows_i_o, flows_p_z  # noqa: F401 (they register)
from reference_systems.dysts.algebra import EQUATIONS, SYMBOLIC, TORCH, equation
from reference_systems.dysts.build import PREFIX, build, catalogue, row
from reference_systems.registry import register

__all__ = ["EQUATIONS", "TORCH", "SYMBOLIC", "equation", "build", "catalogue", "row", "written", "missing"]


def written() -> List[str]:
    """dysts flows whose equations are written (and registered as ``dysts/<name>``)."""
    return sorted(n for n in catalogue()["flows"] if n in EQUATIONS)


def missing() -> List[str]:
    """dysts flows of the catalogue whose equations are not written."""
    return sorted(n for n in catalogue()["flows"] if n not in EQUATIONS)


for _name in written():
    _factory = partial(build, _name)
    _factory.__doc__ = f"dysts's flow {_name} (reference_systems.dysts.build)."
    register(PREFIX + _name, _factory, family="dysts")
