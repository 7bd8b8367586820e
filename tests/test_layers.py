"""The package's import graph, read from the source: no loop (function-local imports included, so none can
hide one), every arrow pointing down the layers, and the torch biLM free of spaCy."""
import ast
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "spacy_elmo"
LAYERS = [
    {"errors", "signals", "folders", "process"},
    {"atomic", "distributed"},
    {"bilm"},
    {"hub"},
    {"embedder", "training"},
    {"pipeline"},
    {"cli", "__main__"},
]
"""Lowest first, as docs/layout.md draws them: a module may import its own layer's and lower layers'
modules, never a higher one's."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """(absolute name, line) of each module or name that `path` imports, function-local imports included;
    `from M import N` counts as M.N where that is a module, else as M."""
    name = module_name(path)
    package = (name if path.name == "__init__.py" else name.rpartition(".")[0]).split(".")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *filter(None, [node.module])])
            for alias in node.names:
                yield (f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base), node.lineno


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


GRAPH = {module_name(path): [(target, line) for target, line in imports(path) if target.split(".")[0] == "spacy_elmo"]
         for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else None
    return next(i for i, names in enumerate(LAYERS) if part in names) if part else len(LAYERS)


def test_every_module_has_a_layer():
    assert [m for m in GRAPH if m != "spacy_elmo" and layer(m) == len(LAYERS)] == []


def test_no_import_loop_even_through_function_local_imports():
    edges = defaultdict(set)
    for module, targets in GRAPH.items():
        edges[module].update(t for t, _ in targets if t != module and t in GRAPH)
    state, loops = {}, []

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                loops.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert loops == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module):
    """The package root is the public face and may import anything; nothing imports it back."""
    arrows_up = [(target, line) for target, line in GRAPH[module]
                 if target == "spacy_elmo" or (module != "spacy_elmo" and layer(target) > layer(module))]
    assert arrows_up == []


def test_the_torch_bilm_never_imports_spacy_or_thinc():
    found = [(path.name, target) for path in sorted((PACKAGE / "bilm").rglob("*.py"))
             for target, _ in imports(path) if target.split(".")[0] in {"spacy", "thinc"}]
    assert found == []
