"""The package's import graph: no cycles, no upward imports, and function-level imports only where they
keep an optional dependency lazy (with a comment saying so).

The graph is read from the source with ``ast`` (every ``tsf/**/*.py``, relative imports resolved,
imports inside functions included, ``if TYPE_CHECKING:`` blocks left out), so it is the graph of
what the code says, not of what one run happened to import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import tsf

PACKAGE = Path(tsf.__file__).resolve().parent

# Optional dependencies (the notebooks and test extras, and what they bring): kept lazy.
OPTIONAL = {"matplotlib", "plotly", "ipywidgets", "pandas", "papermill", "transformers", "jupyter_client",
            "nbformat", "IPython", "PIL", "playwright", "anywidget"}

# What each part of the package may import: data flows config -> model -> (data -> train) -> study.
LOW = {"tsf.version", "tsf.provenance", "tsf.cpu_matmul", "tsf.attention", "tsf.config"}
MODEL = LOW | {"tsf.model", "tsf.cost"}
ALLOWED: dict[str, set[str]] = {
    "tsf.version": set(),
    "tsf.provenance": set(),  # what ran a result: every part may record it
    "tsf.cpu_matmul": set(),  # which kernels float32 CPU products run on
    "tsf.attention": {"tsf.cpu_matmul"},
    "tsf.config": {"tsf.attention"},
    "tsf.model": {"tsf.attention", "tsf.config"},
    "tsf.cost": {"tsf.attention", "tsf.config", "tsf.model"},
    "tsf.data": set(),  # video, transforms, datasets and the synthetic tasks know nothing of the model
    "tsf.weights": MODEL - {"tsf.cost"},
    "tsf.explain": {"tsf.attention", "tsf.config", "tsf.model"},
    "tsf.viz": {"tsf.explain", "tsf.data"},
    "tsf.train": MODEL | {"tsf.weights", "tsf.data"},  # MODEL includes tsf.provenance
    "tsf.bench": MODEL | {"tsf.weights", "tsf.data", "tsf.explain", "tsf.viz"},
    "tsf.study": MODEL | {"tsf.weights", "tsf.data", "tsf.explain", "tsf.viz", "tsf.train", "tsf.bench"},
    "tsf.reproduce": {"tsf.provenance", "tsf.bench", "tsf.study"},
    "tsf.__main__": MODEL | {"tsf.weights", "tsf.data", "tsf.explain", "tsf.viz", "tsf.train", "tsf.bench",
                             "tsf.study", "tsf.reproduce"},
    "tsf": MODEL | {"tsf.weights"},  # the package's public names
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # a tsf module, or an external top-level package
    line: int
    in_function: bool


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("tsf",) + path.relative_to(PACKAGE).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = module_files()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str, path: Path) -> list[Import]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name if alias.name.startswith("tsf") else alias.name.split(".")[0],
                                    child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    base = ".".join(base + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                if not base.startswith("tsf"):
                    found.append(Import(module, base.split(".")[0], child.lineno, in_function))
                    continue
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append(Import(module, sub if sub in MODULES else base, child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return [i for i in found if i.target != "__future__"]


IMPORTS = [i for module, path in MODULES.items() for i in imports_of(module, path)]
GRAPH = {m: sorted({i.target for i in IMPORTS if i.module == m and i.target in MODULES}) for m in MODULES}


def unit(module: str) -> str:
    """The part of the package a module belongs to: ``tsf.data.video`` -> ``tsf.data``."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_the_walk_sees_relative_and_function_level_imports():
    found = {(i.target, i.in_function) for i in imports_of("tsf.bench.rollout", MODULES["tsf.bench.rollout"])}
    assert ("tsf.explain", False) in found and ("tsf.data.toy", False) in found
    assert ("tsf.viz.overlay", True) in found
    assert ("tsf.model", False) in {(i.target, i.in_function) for i in imports_of("tsf.cost", MODULES["tsf.cost"])}
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_every_part_has_a_place_in_the_layers():
    assert {unit(m) for m in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_no_upward_imports(part):
    upward = sorted(f"{i.module} -> {i.target} (line {i.line})" for i in IMPORTS
                    if unit(i.module) == part and i.target in MODULES and unit(i.target) != part
                    and unit(i.target) not in ALLOWED[part])
    assert upward == []


def _parents(module: str) -> list[str]:
    """``tsf.a.b`` -> ``[tsf, tsf.a]``: the packages Python imports first."""
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def _pulls_in_optional(module: str, seen: set[str] | None = None) -> bool:
    """Whether importing ``module`` imports an optional dependency (at module level, directly, through
    its parent packages or through other tsf modules)."""
    seen = set() if seen is None else seen
    seen.add(module)
    for i in IMPORTS:
        if i.module in (module, *_parents(module)) and not i.in_function:
            if i.target in OPTIONAL or (i.target in MODULES and i.target not in seen and _pulls_in_optional(i.target, seen)):
                return True
    return False


def _commented(lines: list[str], line: int) -> bool:
    """A comment on the import's line, or on the line above the block of imports it stands in."""
    if "#" in lines[line - 1]:
        return True
    above = line - 2
    while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
        above -= 1
    return above >= 0 and "#" in lines[above]


def test_function_level_imports_only_keep_optional_dependencies_lazy():
    lines = {m: p.read_text().splitlines() for m, p in MODULES.items()}
    wrong = []
    for i in IMPORTS:
        if not i.in_function:
            continue
        lazy = i.target in OPTIONAL or (i.target in MODULES and _pulls_in_optional(i.target))
        said = _commented(lines[i.module], i.line)
        if not (lazy and said):
            wrong.append(f"{i.module}:{i.line} imports {i.target} inside a function"
                         + ("" if lazy else " (not an optional dependency)") + ("" if said else " (no comment)"))
    assert wrong == []
