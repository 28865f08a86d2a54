"""Small projects with the graph shapes the state machine must get right."""

from __future__ import annotations

from typing import Any

import yaml

from esteira.asl import SHARED, SHARED_PATH

# name -> {step: depends_on}; None means "after the previous step" (the seed's default)
GRAPHS: dict[str, dict[str, list[str] | None]] = {
    "chain": {"a": None, "b": None, "c": None},
    "diamond": {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]},
    "nested": {"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": ["c", "d"], "f": ["e"], "g": ["e"], "h": ["f", "g"]},
    "roots-and-sinks": {"a": [], "b": [], "c": ["a", "b"], "d": ["c"], "e": ["c"]},
    "independent": {"a": [], "b": ["a"], "x": [], "y": ["x"]},
    "not-series-parallel": {"a": [], "b": [], "c": ["a", "b"], "d": ["b"]},
}
SERIES_PARALLEL = {name for name in GRAPHS if name != "not-series-parallel"}


def config_text(name: str, deps: dict[str, list[str] | None]) -> str:
    steps = []
    for i, (step, upstream) in enumerate(deps.items()):
        entry: dict[str, object] = {
            "id": step, "name": f"Step {step.upper()}", "command": ["python", "-m", "jobs", step, "--fast"],
            "resources": {"cpu": 0.5 + i % 3, "memory_gb": 1 + i},
        }
        if upstream is not None:
            entry["depends_on"] = upstream
        if i % 2:
            entry["retries"] = i
            entry["timeout_seconds"] = 600 + i
            entry["env_vars"] = {"APP_STEP": step}
        steps.append(entry)
    return yaml.safe_dump({
        "project_name": name,
        "description": f"{name} graph",
        "version": "2.0.1",
        "owners": {"tech_owner": "ml@rentcars.com", "business_owner": "biz@rentcars.com"},
        "schedule": {"enabled": True, "cron": "15 2 * * 1-5", "timeout_seconds": 3600, "retries": 1,
                     "timezone": "Europe/Lisbon"},
        "runtime": {"python_version": "3.11", "env_vars": {"APP_REGION": "br"}},
        "batch": {"enabled": True, "orchestrator": "step_functions", "pipeline": {"steps": steps}},
        "infra": {"compute": {"provider": "ec2", "ec2_type": "c5.2xlarge", "min_quantity": 0, "max_quantity": 1,
                              "spot": True}},
        "notifications": {"on_success": ["ml@rentcars.com"], "on_failure": ["oncall@rentcars.com"]},
    }, sort_keys=False)


def task_parameters(definition: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """A Task state's Parameters with what it reads from the run's shared values (the environment
    lists, the network: esteira.asl writes them once, in the `esteira.shared` state) written in."""
    shared = definition["States"][SHARED]["Parameters"]

    def inline(value: Any) -> Any:
        if isinstance(value, list):
            return [inline(item) for item in value]
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            if key.endswith(".$") and isinstance(item, str) and item.startswith(f"{SHARED_PATH}."):
                node = shared
                for part in item.removeprefix(f"{SHARED_PATH}.").split("."):
                    node = node[part]
                out[key.removesuffix(".$")] = inline(node)
            else:
                out[key] = inline(item)
        return out

    parameters: dict[str, Any] = inline(state["Parameters"])
    return parameters
