"""Small projects with the graph shapes the state machine must get right."""

from __future__ import annotations

import yaml

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
