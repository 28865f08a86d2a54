"""The local backend really runs a project through Airflow's dag.test(), steps as processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from esteira.airflow.factory import build_all
from esteira.airflow.templates import run_date
from esteira.settings import Settings

LOGICAL = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def settings(projects_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """dag.test() re-parses the DAG folder to serialize the DAG: it must see the same projects."""
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    monkeypatch.setenv("ESTEIRA_BACKEND", "local")
    return Settings.from_environ()


def outputs(home: Path, project: str, day: str) -> dict[str, dict[str, Any]]:
    folder = home / "data" / project / day
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


@pytest.mark.usefixtures("airflow_db")
def test_churn_runs_every_step_in_dependency_order_with_the_right_environment(
    projects_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dag = build_all(settings(projects_dir, monkeypatch))["churn"]
    run = dag.test(logical_date=LOGICAL)
    assert run.state == "success"

    home = projects_dir.parent / "home"
    done = outputs(home, "churn", "2026-11-20")
    cfg = yaml.safe_load((projects_dir / "churn" / "config.yaml").read_text())
    steps = cfg["batch"]["pipeline"]["steps"]
    assert set(done) == {s["id"] for s in steps}
    for step in steps:
        for upstream in step.get("depends_on", []):
            assert done[upstream]["finished_ns"] <= done[step["id"]]["started_ns"], (upstream, step["id"])
        env = done[step["id"]]["env"]
        assert env["ENV"] == "local"
        assert env["RUN_DATE"] == "2026-11-20T03:00:00Z"
        assert env["RUN_ID"] == run.run_id
        assert env["MLFLOW_EXPERIMENT_NAME"] == "churn"
        assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{home.resolve() / 'mlflow.db'}"
        assert env["DATA_ROOT"] == str((home / "data").resolve())
        assert env["APP_FEATURE_WINDOW_DAYS"] == "90"  # runtime.env_vars reach every step
        assert env.get("APP_MODEL_KIND") == step.get("env_vars", {}).get("APP_MODEL_KIND")  # step env stays put
    assert done["score"]["model"] == done["select_best"]["best"]


@pytest.mark.usefixtures("airflow_db")
def test_a_failing_step_fails_the_run_and_nothing_downstream_runs(
    write_project: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch,
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
      - {{id: first, name: First, command: ["python", "-c", "{marker.format('first')}"], resources: {{cpu: 1, memory_gb: 1}}}}
      - {{id: boom, name: Boom, command: ["python", "-c", "import sys; sys.exit(3)"], resources: {{cpu: 1, memory_gb: 1}}}}
      - {{id: after, name: After, command: ["python", "-c", "{marker.format('after')}"], resources: {{cpu: 1, memory_gb: 1}}}}
infra: {{compute: {{provider: ec2, ec2_type: t3.small, min_quantity: 0, max_quantity: 1, spot: true}}}}
"""
    config = write_project("fails", text)
    dag = build_all(settings(config.parent.parent, monkeypatch))["fails"]
    assert dag.timetable.__class__.__name__ == "NullTimetable"  # enabled: false -> manual runs only
    run = dag.test(logical_date=LOGICAL)
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"first": "success", "boom": "failed", "after": "upstream_failed"}
    data = config.parent.parent.parent / ".esteira" / "data"
    assert (data / "first").read_text() == "ran"
    assert not (data / "after").exists()


def test_run_date_is_the_logical_date_or_when_a_manual_run_was_asked_for() -> None:
    scheduled = SimpleNamespace(logical_date=datetime(2026, 11, 20, 6, 0, tzinfo=UTC), run_after=None)
    assert run_date(scheduled) == "2026-11-20T06:00:00Z"
    # Airflow 3 manual runs may have no logical date: the date the run was asked for is used
    from zoneinfo import ZoneInfo

    manual = SimpleNamespace(logical_date=None, run_after=datetime(2026, 11, 20, 9, 30, tzinfo=ZoneInfo("America/Sao_Paulo")))
    assert run_date(manual) == "2026-11-20T12:30:00Z"


def test_a_stack_points_the_local_steps_at_its_mlflow_server(projects_dir: Path) -> None:
    """docker-compose.yaml sets ESTEIRA_LOCAL_MLFLOW_TRACKING_URI: every step logs to that server."""
    base = {"ESTEIRA_PROJECTS_DIR": str(projects_dir), "ESTEIRA_BACKEND": "local"}
    served = build_all(Settings.from_environ({**base, "ESTEIRA_LOCAL_MLFLOW_TRACKING_URI": "http://mlflow:5000"}))
    default = build_all(Settings.from_environ(base))
    for dag_id in ("recsys", "churn"):
        assert {t.env["MLFLOW_TRACKING_URI"] for t in served[dag_id].tasks} == {"http://mlflow:5000"}
        assert {t.env["MLFLOW_TRACKING_URI"] for t in default[dag_id].tasks} == {
            f"sqlite:///{(projects_dir.parent / 'home').resolve() / 'mlflow.db'}"}


def test_a_bad_local_mlflow_uri_is_one_clear_error_dag(projects_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    monkeypatch.setenv("ESTEIRA_LOCAL_MLFLOW_TRACKING_URI", "mlflow 5000")
    dags = build_all()
    assert list(dags) == ["esteira_settings_error"]
    assert "ESTEIRA_LOCAL_MLFLOW_TRACKING_URI='mlflow 5000' is not an MLflow tracking URI" in dags[
        "esteira_settings_error"].doc_md
