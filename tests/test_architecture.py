"""The shape the code keeps: YAML -> model -> Plan -> renderers, one way.

Renderers read only the Plan: none imports the config model, the YAML reader or another renderer,
so two outputs can only differ where the Plan says they do. The Airflow side renders the Plan as
a DagSpec (plain data, what the compile cache stores), and only the DagSpec becomes a DAG. The
core never imports Airflow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "plugins" / "esteira"
RENDERERS = {
    "esteira.asl": PACKAGE / "asl.py",
    "esteira.schedules": PACKAGE / "schedules.py",
    "esteira.cloudformation": PACKAGE / "cloudformation.py",
    "esteira.airflow.dag_spec": PACKAGE / "airflow" / "dag_spec.py",
}
# what turns a DagSpec into Airflow objects, on every DAG-processor parse
FROM_SPEC = {
    "esteira.airflow.dag_builder": PACKAGE / "airflow" / "dag_builder.py",
    "esteira.airflow.notify": PACKAGE / "airflow" / "notify.py",
}
CONFIG_SIDE = {"esteira.config", "esteira.model", "esteira.yaml_source", "esteira.validation",
               "esteira.environments", "esteira.discovery"}


def imports(file: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names}
    return out


@pytest.mark.parametrize("module", sorted(RENDERERS))
def test_a_renderer_reads_only_the_plan(module: str) -> None:
    used = imports(RENDERERS[module])
    assert "esteira.plan" in used
    assert not used & CONFIG_SIDE, f"{module} reads the config side: {sorted(used & CONFIG_SIDE)}"
    family = "esteira.airflow." if module.startswith("esteira.airflow.") else module  # the DAG and its callbacks
    others = {m for m in RENDERERS if not m.startswith(family)}
    assert not used & others, f"{module} imports another renderer: {sorted(used & others)}"


@pytest.mark.parametrize("module", sorted(FROM_SPEC))
def test_the_dag_is_built_from_the_spec_alone(module: str) -> None:
    used = imports(FROM_SPEC[module])
    assert not used & (CONFIG_SIDE | {"esteira.plan"} | set(RENDERERS)), sorted(used)


def test_the_core_never_imports_airflow() -> None:
    for file in PACKAGE.rglob("*.py"):
        if "airflow" in file.relative_to(PACKAGE).parts:
            continue
        airflow = {name for name in imports(file) if name == "airflow" or name.startswith("airflow.")}
        assert not airflow, f"{file.relative_to(REPO)} imports {sorted(airflow)}"
