"""Under Airflow 2.11, `dag.test()` on the local backend runs a project: steps as processes, in order.

Expectations come from the config (its steps and depends_on), never from a list kept here, so
the test follows the project as its step commands change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from esteira.airflow.factory import build_all
from esteira.airflow.templates import run_date
from esteira.settings import Settings

LOGICAL = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def settings(projects_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """dag.test() may re-parse the DAG folder: it must see the same projects."""
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    monkeypatch.setenv("ESTEIRA_BACKEND", "local")
    return Settings.from_environ()


def edges(steps: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """depends_on, or after the previous step in the list when it is omitted."""
    out = set()
    for i, step in enumerate(steps):
        out |= {(dep, step["id"]) for dep in step.get("depends_on", [steps[i - 1]["id"]] if i else [])}
    return out


def markers(root: Path, project: str, day: str) -> dict[str, dict[str, Any]]:
    """Each step's `<step>.json` (written last by the step: when it started and finished, its env)."""
    return {p.stem: json.loads(p.read_text()) for p in root.rglob(f"data/{project}/{day}/*.json")}


@pytest.mark.usefixtures("airflow_db")
def test_churn_runs_every_step_in_dependency_order(projects_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dag = build_all(settings(projects_dir, monkeypatch))["churn"]
    run = dag.test(execution_date=LOGICAL)  # Airflow 2's name for the logical date
    assert run.state == "success"

    steps = yaml.safe_load((projects_dir / "churn" / "config.yaml").read_text())["batch"]["pipeline"]["steps"]
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert {task_id: ti.state for task_id, ti in tis.items()} == {s["id"]: "success" for s in steps}
    done = markers(projects_dir.parent, "churn", "2026-11-20")
    assert set(done) == {s["id"] for s in steps}
    for upstream, downstream in edges(steps):
        assert done[upstream]["finished_ns"] <= done[downstream]["started_ns"], (upstream, downstream)
        assert tis[upstream].end_date <= tis[downstream].end_date, (upstream, downstream)
    for step in steps:
        env = done[step["id"]]["env"]
        assert env["ENV"] == "local"
        assert env["RUN_DATE"] == "2026-11-20T03:00:00Z"  # templates.run_date on a 2.x DagRun
        assert env["RUN_ID"] == run.run_id
        assert env["MLFLOW_EXPERIMENT_NAME"] == "churn"


@pytest.mark.usefixtures("airflow_db")
def test_a_failing_step_fails_the_run_nothing_downstream_runs_and_the_failure_is_notified(
    write_project: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    marker = ("import os, pathlib; d = pathlib.Path(os.environ['DATA_ROOT']); d.mkdir(parents=True, exist_ok=True); "
              "(d / '{}').write_text('ran')")
    text = f"""\
project_name: fails
version: "1"
owners: {{tech_owner: a@rentcars.com, business_owner: b@rentcars.com}}
schedule: {{enabled: false, cron: "0 3 * * *", timeout_seconds: 600, retries: 0}}
runtime: {{python_version: "3.11"}}
batch:
  enabled: true
  orchestrator: airflow
  pipeline:
    steps:
      - {{id: first, name: First, command: ["python", "-c", "{marker.format('first')}"],
          resources: {{cpu: 1, memory_gb: 1}}}}
      - {{id: boom, name: Boom, command: ["python", "-c", "import sys; sys.exit(3)"],
          resources: {{cpu: 1, memory_gb: 1}}}}
      - {{id: after, name: After, command: ["python", "-c", "{marker.format('after')}"],
          resources: {{cpu: 1, memory_gb: 1}}}}
infra: {{compute: {{provider: ec2, ec2_type: t3.small, min_quantity: 0, max_quantity: 1, spot: true}}}}
notifications: {{on_failure: [a@rentcars.com]}}
"""
    config = write_project("fails", text)
    dag = build_all(settings(config.parent.parent, monkeypatch))["fails"]
    assert dag.timetable.__class__.__name__ == "NullTimetable"  # enabled: false -> manual runs only
    with caplog.at_level(logging.INFO, logger="esteira"):
        run = dag.test(execution_date=LOGICAL)
    assert run.state == "failed"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {
        "first": "success", "boom": "failed", "after": "upstream_failed"}
    data = config.parent.parent.parent / ".esteira" / "data"
    assert (data / "first").read_text() == "ran"
    assert not (data / "after").exists()
    # the DAG's failure callback ran with a 2.x DagRun (local backend: logged, not published)
    [message] = [r.getMessage() for r in caplog.records if "esteira notification" in r.getMessage()]
    assert '"status":"FAILED"' in message
    assert '"run_date":"2026-11-20T03:00:00Z"' in message


def test_run_date_of_an_airflow_2_dag_run_is_its_logical_date() -> None:
    """2.x DagRuns always have a logical date, and no run_after: the fallback is never reached."""
    from airflow.models.dagrun import DagRun

    assert not hasattr(DagRun, "run_after")
    run = DagRun(dag_id="d", run_id="r", execution_date=datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
    assert run_date(run) == "2026-11-20T06:00:00Z"
