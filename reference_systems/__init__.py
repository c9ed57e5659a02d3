"""Reference systems with known Lyapunov exponents.

    import reference_systems as rs
    rs.names()                       # the catalogue
    sys = rs.get("henon", a=1.4)     # build one (parameters overridable)
    rs.Map(...), rs.Flow(...)        # define your own in a few lines
    rs.SwitchedFlow(...)             # a flow whose vector field jumps across g(x) = 0
    rs.register("lozi", lozi)        # make rs.get("lozi") find it

Third-party packages can add systems through the entry-point group
``lyapbench.systems`` (an entry point names a System or a factory).
"""
from __future__ import annotations

# the built-in catalogue registers itself on import
from reference_systems import dysts, flows, maps, networks, random_products  # noqa: F401
from reference_systems.noise import TrajectoryRNG
from reference_systems.reference import PROVENANCES, Reference
from reference_systems.registry import catalogue, family, get, names, register, unregister, variants
from reference_systems.switched import SwitchedFlow
from reference_systems.system import Flow, Map, System

__all__ = ["System", "Map", "Flow", "SwitchedFlow", "Reference", "PROVENANCES", "TrajectoryRNG",
           "register", "unregister", "names", "family", "get", "variants", "catalogue"]
