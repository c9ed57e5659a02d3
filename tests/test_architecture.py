"""The import contract: packages follow the flow of data and arrows point one way.

Every ``import`` in ``suite``, ``reference_systems`` and ``tasks`` (at module
level or inside a function: a function-local import is still an arrow) is
read from the source with ``ast``.  A module may import only from its own
layer or the layers below it (:data:`LAYERS`, lowest first), and the module
graph has no cycle.  ``docs/architecture.md`` describes the same layers.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("suite", "reference_systems", "tasks")

#: lowest first; a module belongs to the layer of its longest matching package prefix
LAYERS: List[Tuple[str, ...]] = [
    ("suite",),  # the top-level package: version and the aliases of moved modules, imports nothing of ours
    ("suite.core",),
    ("reference_systems",),
    ("tasks",),
    ("suite.estimators",),
    ("suite.peers",),
    ("suite.scoring",),
    ("suite.reporting",),
    ("suite.grid",),
    ("suite.studies",),
    ("suite.cli", "suite.benchmarks"),
]


def _modules() -> Dict[str, Path]:
    out = {}
    for top in FIRST_PARTY:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def imports_of(name: str) -> Set[str]:
    """First-party modules that module ``name`` imports (a name imported from a package that is a
    submodule counts as that submodule)."""
    path = MODULES[name]
    here = name.split(".") if _is_package(name) else name.split(".")[:-1]
    out: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] not in FIRST_PARTY:
                continue
            while t not in MODULES and "." in t:  # `import a.b.c` of an attribute path: its module
                t = t.rsplit(".", 1)[0]
            out.add(t)
    out.discard(name)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def layer_of(name: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None, f"{name} is in no layer: add its package to LAYERS"
    return best


def test_every_module_is_in_a_layer():
    for m in MODULES:
        layer_of(m)


def test_arrows_point_down_the_layers():
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, targets in GRAPH.items() for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert not upward, "imports against the flow of data:\n" + "\n".join(upward)


def find_cycle(graph: Dict[str, Set[str]]):
    """A list of modules forming a cycle, or None (iterative depth-first search)."""
    colour: Dict[str, int] = {}
    for start in sorted(graph):
        if colour.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not colour.get(nxt):
                colour[nxt] = 1
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
                path.append(nxt)
    return None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_can_fail():
    """The two checks see a planted upward import and a planted cycle."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("suite.core.errors") < layer_of("reference_systems.system") < layer_of("suite.estimators.qr")
    assert "suite.core.errors" in GRAPH["reference_systems.system"]
    assert "suite.estimators.numerics.linalg" in GRAPH["suite.estimators.qr"]  # function-level and from-imports


@pytest.mark.parametrize("old", ["suite.errors", "suite.runner", "suite.tolerance", "suite.checks",
                                 "suite.estimators.capture", "suite.linalg"])
def test_moved_modules_keep_their_old_names(old):
    import importlib

    import suite
    module = importlib.import_module(old)
    assert module is importlib.import_module(suite.MOVED[old])
    assert module.__spec__.name == suite.MOVED[old]


def test_every_moved_module_exists():
    import suite
    for old, new in suite.MOVED.items():
        assert new in MODULES, f"{old} -> {new}: no such module"
        assert old not in MODULES, f"{old} exists as a file beside its alias"


def test_no_function_local_imports_of_our_own_modules():
    """Imports of lyapbench's own modules sit at the top of a module, where a reader sees the arrows;
    a function-local import is left only for optional third-party packages (a peer, dask, matplotlib)."""
    local = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    mod = (node.module or "." if isinstance(node, ast.ImportFrom) and not node.level else
                           "." if isinstance(node, ast.ImportFrom) else
                           node.names[0].name if isinstance(node, ast.Import) else None)
                    if mod is not None and (mod == "." or mod.split(".")[0] in FIRST_PARTY):
                        local.append(f"{name}:{node.lineno}")
    assert not local, local
