"""The package's shape (docs/architecture.md), checked on the source: imports point down the layer table,
there is no import cycle (module-level or inside functions), methods ask activations for facts instead of
probing their types, and the theory and verification packages stay independent."""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# room -> rooms it may import (besides itself).  The order is the layer order of docs/architecture.md.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_json": set(),
    "_blas": set(),
    "activations": {"errors"},
    "layers": {"errors"},
    "network": {"errors", "activations", "layers"},
    "evaluate": {"errors", "activations", "layers", "network"},
    "spec": {"errors"},
    "vnnlib": {"errors", "spec"},
    "vnnlib2": {"errors", "spec", "vnnlib"},
    "compose": {"errors", "activations", "layers", "network", "spec", "vnnlib", "vnnlib2"},
    "io": {"errors", "activations", "layers", "network", "evaluate", "_json"},
    "proofcheck": {"errors", "activations", "layers", "network", "spec", "vnnlib", "io"},
    "bounds": {"errors", "_json", "_blas", "activations", "layers", "network", "evaluate"},
    "lipschitz": {"errors", "_json", "_blas", "activations", "layers", "network", "evaluate", "proofcheck"},
    "smt": {"errors", "_json", "_blas", "activations", "layers", "network", "evaluate", "spec", "vnnlib", "bounds",
            "proofcheck"},
    "batch": {"errors", "_json", "_blas", "spec", "vnnlib", "vnnlib2", "compose", "io", "lipschitz", "smt"},
    "cli": {"errors", "_json", "_blas", "activations", "layers", "network", "evaluate", "spec", "vnnlib",
            "vnnlib2", "compose", "io", "bounds", "lipschitz", "smt", "batch", "proofcheck"},
    "__main__": {"cli"},
    "__init__": {"errors", "network", "lipschitz", "io", "bounds", "vnnlib", "smt", "spec"},
}


def _modules(pkg: str) -> dict[str, pathlib.Path]:
    out = {}
    for p in (ROOT / pkg).rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = {**_modules("verification"), **_modules("theorytools")}


def _resolve(name: str) -> str:
    while name and name not in MODULES:
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return name


def _imports(path: pathlib.Path):
    """(imported project module, line, at module level?) for every import statement of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                target = _resolve(f"{node.module}.{a.name}")
                if target:
                    yield target, node.lineno, id(node) in top
        elif isinstance(node, ast.Import):
            for a in node.names:
                target = _resolve(a.name)
                if target:
                    yield target, node.lineno, id(node) in top


def _room(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "verification":
        return parts[0]
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_is_in_the_layer_table():
    rooms = {_room(m) for m in MODULES if m.startswith("verification")}
    assert rooms <= set(ALLOWED), sorted(rooms - set(ALLOWED))


def test_imports_point_down_the_layer_table():
    bad = []
    for mod, path in MODULES.items():
        if not mod.startswith("verification"):
            continue
        src = _room(mod)
        for target, line, _ in _imports(path):
            if not target.startswith("verification"):
                continue
            dst = _room(target)
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{path.relative_to(ROOT)}:{line} {src} -> {dst}")
    assert not bad, "\n".join(bad)


def test_private_modules_stay_in_their_room():
    """``_name`` modules inside a room (kernels, relaxation math, readers) are imported only from that room."""
    bad = []
    for mod, path in MODULES.items():
        for target, line, _ in _imports(path):
            parts = target.split(".")
            if len(parts) > 2 and any(p.startswith("_") for p in parts[2:]) and _room(target) != _room(mod):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, bad


def test_theory_and_verification_are_independent():
    bad = [f"{p.relative_to(ROOT)}:{line}" for mod, p in MODULES.items() for target, line, _ in _imports(p)
           if target.split(".")[0] != mod.split(".")[0]]
    assert not bad, bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(n: str) -> None:  # Tarjan; the graph is small, recursion depth < number of modules
        index[n] = low[n] = len(index)
        stack.append(n)
        on.add(n)
        for w in graph.get(n, ()):
            if w not in index:
                visit(w)
                low[n] = min(low[n], low[w])
            elif w in on:
                low[n] = min(low[n], index[w])
        if low[n] == index[n]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == n:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in sorted(graph):
        if n not in index:
            visit(n)
    return out


@pytest.mark.parametrize("with_function_level", [False, True], ids=["module-level", "all-imports"])
def test_no_import_cycle(with_function_level):
    """Every import is an edge, including a package importing its own submodules."""
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in MODULES.items():
        for target, _, top in _imports(path):
            if target != mod and (top or with_function_level):
                graph[mod].add(target)
    assert _cycles(graph) == []


ACTIVATION_CLASSES = {"Activation", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "SiLU", "Identity", "GroupSort",
                      "MaxMin", "Householder", "Elementwise"}


def _names(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Tuple):
        return set().union(*(_names(e) for e in node.elts))
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr}
    return set()


def test_methods_do_not_probe_activation_types():
    """bounds/, lipschitz/ and smt/ ask activations for facts (slope bounds, pair form, relaxations)."""
    bad = []
    for mod, path in MODULES.items():
        if _room(mod) not in {"bounds", "lipschitz", "smt"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                    and len(node.args) == 2 and _names(node.args[1]) & (ACTIVATION_CLASSES - {"Activation"})):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad
