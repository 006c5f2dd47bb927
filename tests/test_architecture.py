"""The shape of the code, read with `ast` (nothing is imported):

- no import circles inside `mosecrot/` or `orchestrator/`: every import statement counts, wherever it stands
  (module level, inside a function, under ``TYPE_CHECKING``), so a circle cannot hide in a lazy import;
- `mosecrot` (the science) never imports Ray, MLflow, Optuna or `orchestrator`;
- tests share helpers through fixtures, not ``from conftest import``, and import no private name of ours.

The checks run on small synthetic trees too, so that they are seen to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("mosecrot", "orchestrator")
FORBIDDEN_IN_SCIENCE = ("ray", "mlflow", "optuna", "orchestrator")


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``packages`` under ``root``."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imported_names(path: Path, module: str) -> set[str]:
    """Every name an import statement of ``path`` imports, dotted from its top-level package (relative imports
    resolved): ``import a.b`` gives ``a.b``, ``from a.b import c`` gives ``a.b.c`` (a module or not)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([base] if base else [])])
            names.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return names


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports: each imported name counts as the longest module that
    it is or lies in (``from pkg import submodule`` is the submodule; ``from pkg.mod import f`` is pkg.mod)."""
    mods = modules(root, packages)
    graph = {}
    for module, path in mods.items():
        deps = set()
        for name in imported_names(path, module):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != module:
                deps.add(name)
        graph[module] = deps
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def forbidden_imports(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    """``file: name`` for every import in ``package`` of a top-level package in ``forbidden``."""
    out = []
    for module, path in modules(root, (package,)).items():
        for name in sorted(imported_names(path, module)):
            if name.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(root)}: {name}")
    return out


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# --- the checks, on this repository -----------------------------------------------------------------------


def test_no_import_circles_in_the_packages():
    graph = import_graph(REPO)
    assert len(graph) > 50  # both packages were read
    cycles = import_cycles(graph)
    print(f"{len(graph)} modules, {sum(len(d) for d in graph.values())} import edges, {len(cycles)} circles")
    assert cycles == []


def test_the_science_package_imports_no_orchestration():
    assert forbidden_imports(REPO, "mosecrot", FORBIDDEN_IN_SCIENCE) == []


def test_tests_use_fixtures_and_no_private_names():
    ours = ("mosecrot", "orchestrator")
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "conftest" or node.module.split(".")[-1].startswith("test_"):
                    offenders.append(f"{path.name}: from {node.module} import ...")
                if node.module.split(".")[0] in ours:
                    offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.name}: import {a.name}"
                    for a in node.names
                    if a.name == "conftest"
                    or a.name.startswith("test_")
                    or any(part.startswith("_") and part != "__init__" for part in a.name.split("."))
                    and a.name.split(".")[0] in ours
                ]
    assert offenders == []


# --- the checks can fail --------------------------------------------------------------------------------------


def test_a_circle_through_a_lazy_import_is_found(tmp_path):
    root = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import f\n",
            "pkg/b.py": "def f():\n    from pkg import c\n",
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import g\n",
            "pkg/d.py": "from . import a\n",
        },
    )
    graph = import_graph(root, ("pkg",))
    assert graph["pkg.d"] == {"pkg.a"}  # relative import resolved
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_a_forbidden_import_is_found_wherever_it_stands(tmp_path):
    root = _write(
        tmp_path,
        {
            "sci/__init__.py": "",
            "sci/m.py": "def f():\n    import ray.tune\n",
            "sci/n.py": "from mlflow import MlflowClient\n",
        },
    )
    assert forbidden_imports(root, "sci", FORBIDDEN_IN_SCIENCE) == [
        "sci/m.py: ray.tune",
        "sci/n.py: mlflow.MlflowClient",
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_is_read(package):
    assert f"{package}" in modules(REPO) and any(m.startswith(f"{package}.") for m in modules(REPO))
