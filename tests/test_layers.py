"""The layers of DESIGN.md, checked on the code's imports (every import statement, at any depth, read
with ast): the data layer is plain Python, the Luigi layer wires it, and a backend is named only by its
factory. A map nobody checks drifts; this one fails the suite instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "taxi_luigi"

#: The Luigi layer: Tasks, Targets and Parameters, the configuration, and the commands that read it.
LUIGI_LAYER = {"tasks", "targets", "parameters", "config", "cli", "cron", "status", "invalidate", "refresh"}
#: Forbidden to every other module of the pipeline (the demo, a corner of its own, runs tasks).
LUIGI = {"luigi", *(f"taxi_luigi.{name}" for name in LUIGI_LAYER)}
BACKENDS = {
    "taxi_luigi.lake": {"taxi_luigi.lake.local", "taxi_luigi.lake.gcs"},
    "taxi_luigi.warehouse": {
        "taxi_luigi.warehouse.duckdb",
        "taxi_luigi.warehouse.postgres",
        "taxi_luigi.warehouse.bigquery",
    },
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path) -> set[str]:
    """The modules a file imports, anywhere in it: ``from taxi_luigi import clean`` is taxi_luigi.clean.

    The package's own ``__init__`` (which imports every task, so that ``luigi --module taxi_luigi`` finds
    them) is left out: it is where the layers meet, not a layer.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module != "taxi_luigi":  # the package itself (its __init__ registers the tasks) is no layer
                found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if is_module(f"{node.module}.{a.name}"))
    return found


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n == "taxi_luigi" or n.startswith("taxi_luigi.")}


def reached(start: str) -> set[str]:
    """Every module of ours that ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for name in ours(GRAPH.get(todo.pop(), set())) - seen:
            seen.add(name)
            todo.append(name)
    return seen


def top(name: str) -> str:
    """A module's root package: luigi.contrib.gcs is luigi."""
    return name.split(".")[0]


def test_the_map_covers_the_package():
    assert {"taxi_luigi.tasks", "taxi_luigi.clean", "taxi_luigi.warehouse.duckdb", "taxi_luigi.demo.sample"} <= set(
        GRAPH
    )


PLAIN = sorted(
    name
    for name in GRAPH
    if name != "taxi_luigi" and name.removeprefix("taxi_luigi.") not in LUIGI_LAYER and ".demo" not in f"{name}."
)


@pytest.mark.parametrize("name", PLAIN)
def test_the_data_layer_imports_neither_luigi_nor_config_nor_tasks(name):
    """source, clean, services, lake/, warehouse/ and every helper they use take plain arguments."""
    wrong = {n for n in GRAPH[name] if n in LUIGI or top(n) == "luigi"}
    assert not wrong, f"{name} imports {sorted(wrong)}"


def test_services_imports_nothing_of_ours():
    assert not ours(GRAPH["taxi_luigi.services"])


def test_clean_reaches_neither_the_lake_nor_a_warehouse():
    wrong = {n for n in reached("taxi_luigi.clean") if n.startswith(("taxi_luigi.lake", "taxi_luigi.warehouse"))}
    assert not wrong, f"clean reaches {sorted(wrong)}"


@pytest.mark.parametrize("factory", sorted(BACKENDS))
def test_only_the_factory_names_a_backend_module(factory):
    backends = BACKENDS[factory]
    naming = {name for name, names in GRAPH.items() if names & backends and name != factory}
    assert not naming, f"{sorted(naming)} import {sorted(backends)}: only {factory} picks a backend"


def test_the_pipeline_never_imports_the_demo():
    """The demo's sample generator and server are for the demo, the tests and the benchmarks."""
    demo_users = {name for name, names in GRAPH.items() if any(n.startswith("taxi_luigi.demo") for n in names)}
    assert demo_users <= {"taxi_luigi.cli"} | {n for n in GRAPH if n.startswith("taxi_luigi.demo")}
