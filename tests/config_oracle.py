"""The repo's configs read with plain PyYAML: what the tests expect, independent of esteira's model.

Shared by both suites (tests/, tests_airflow2/) so that both check the DAGs against the same reading.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from session_fixtures import PROJECTS

CONFIGS: dict[str, dict[str, Any]] = {
    p.parent.name: yaml.safe_load(p.read_text()) for p in sorted(PROJECTS.glob("*/config.yaml"))}
ENVIRONMENTS: dict[str, Any] = yaml.safe_load((PROJECTS / "environments.yaml").read_text())


def steps(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return cfg["batch"]["pipeline"]["steps"]


def expected_edges(cfg: dict[str, Any]) -> set[tuple[str, str]]:
    """depends_on, or after the previous step in the list when it is omitted (the seed's default)."""
    edges = set()
    for i, step in enumerate(steps(cfg)):
        deps = step.get("depends_on", [steps(cfg)[i - 1]["id"]] if i else [])
        edges |= {(dep, step["id"]) for dep in deps}
    return edges


def command(step: dict[str, Any]) -> list[str]:
    return shlex.split(step["command"]) if isinstance(step["command"], str) else step["command"]
