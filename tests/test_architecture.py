"""The architecture rules that the import contracts (``lint-imports``) do not cover.

No module imports a module that imports it back, directly or through others, anywhere in
leadloop's three packages: an import cycle is a structure problem even when a function-level
import keeps it from failing at start-up. (Imports for type checking only are left out: they
do not run.)
"""

from __future__ import annotations

import graphlib

import grimp
import pytest

PACKAGES = ("scoring", "connectors", "integration")


def import_cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """Return one import cycle of ``graph`` as a list of modules, or None if there is none."""
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as cycle:
        return list(cycle.args[1])
    return None


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)


def test_no_import_cycles(graph):
    assert import_cycle(graph) is None


def test_a_cycle_is_found_when_there_is_one(graph):
    graph.add_import(importer="integration.store.models", imported="integration.pipeline.jobs")
    found = import_cycle(graph)
    assert found is not None and "integration.store.models" in found
