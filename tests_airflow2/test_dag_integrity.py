"""Under Airflow 2.11, the real dags/ folder holds exactly the DAGs the configs describe.

Expectations are read from the YAML files with plain PyYAML, independently of esteira's model.
Both backends are parsed: `local`, and `ecs`, the default on MWAA.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import airflow
import pytest
from airflow.models.dagbag import DagBag
from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator
from airflow.serialization.serialized_objects import SerializedDAG

from config_oracle import CONFIGS, command, expected_edges, steps
from conftest import DAGS, PROJECTS
from esteira.airflow import compat
from esteira.airflow.local_operator import LocalProcessOperator
from esteira.airflow.timetable import EsteiraTimetable
from esteira.backfill import plan_backfill


@pytest.fixture(scope="module", params=["local", "ecs"])
def bag(request: pytest.FixtureRequest) -> Iterator[tuple[str, DagBag]]:
    os.environ["ESTEIRA_BACKEND"] = request.param
    try:
        yield request.param, DagBag(dag_folder=str(DAGS), include_examples=False)
    finally:
        os.environ.pop("ESTEIRA_BACKEND")


def test_this_is_airflow_2_and_compat_takes_the_airflow_2_import_paths() -> None:
    assert airflow.__version__.startswith("2.11.")
    assert compat.AIRFLOW_3 is False
    assert compat.DAG.__module__ == "airflow.models.dag"
    assert compat.BaseOperator.__module__ == "airflow.models.baseoperator"
    assert compat.BaseNotifier.__module__ == "airflow.notifications.basenotifier"


def test_no_import_errors_and_one_dag_per_project(bag: tuple[str, DagBag]) -> None:
    _, dagbag = bag
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == set(CONFIGS)
    for dag in dagbag.dags.values():
        assert "esteira:config-error" not in dag.tags, dag.doc_md


@pytest.mark.parametrize("project", sorted(CONFIGS))
def test_tasks_and_edges_are_the_configs_steps_and_dependencies(bag: tuple[str, DagBag], project: str) -> None:
    _, dagbag = bag
    cfg = CONFIGS[project]
    dag = dagbag.dags[project]
    assert [t.task_id for t in dag.tasks] == [s["id"] for s in steps(cfg)]
    assert {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids} == expected_edges(cfg)
    assert [t.task_display_name for t in dag.tasks] == [s["name"] for s in steps(cfg)]  # Airflow 2.9+


@pytest.mark.parametrize("project", sorted(CONFIGS))
def test_dag_level_settings_come_from_the_config(bag: tuple[str, DagBag], project: str) -> None:
    backend, dagbag = bag
    cfg = CONFIGS[project]
    sched = cfg["schedule"]
    dag = dagbag.dags[project]
    assert isinstance(dag.timetable, EsteiraTimetable)  # a run's logical date is the cron instant
    assert dag.timetable.cron == sched["cron"]
    assert dag.timetable.timezone == sched.get("timezone", "UTC")
    assert dag.max_active_runs == sched.get("max_active_runs", 1)
    assert dag.catchup is sched.get("catchup", False)  # passed explicitly: Airflow 2 defaults to True
    assert dag.dagrun_timeout == timedelta(seconds=sched["timeout_seconds"])
    assert dag.owner == cfg["owners"]["tech_owner"]
    assert dag.owner_links == {cfg["owners"]["tech_owner"]: f"mailto:{cfg['owners']['tech_owner']}"}
    # on ECS, Step Functions owns the production schedule unless the config says airflow: the DAG
    # then schedules nothing, and is unpaused so that manual runs and backfills run
    owned_by_aws = backend == "ecs" and cfg["batch"]["orchestrator"] != "airflow"
    assert dag.timetable.can_be_scheduled is not owned_by_aws
    assert dag.is_paused_upon_creation is (False if owned_by_aws else None)
    assert (dag.on_failure_callback is not None) == bool(cfg.get("notifications", {}).get("on_failure"))


@pytest.mark.parametrize("project", sorted(CONFIGS))
def test_each_task_runs_the_steps_command_with_its_retries_and_timeout(bag: tuple[str, DagBag], project: str) -> None:
    backend, dagbag = bag
    cfg = CONFIGS[project]
    sched = cfg["schedule"]
    for step in steps(cfg):
        task = dagbag.dags[project].get_task(step["id"])
        assert task.retries == step.get("retries", sched["retries"])
        timeout = step.get("timeout_seconds", sched["timeout_seconds"])
        # ecs: timeout_seconds bounds each ECS task, execution_timeout the whole try (esteira.airflow.ecs_operator)
        assert (task.execution_timeout.total_seconds() if backend == "local" else task.task_timeout_seconds) == timeout
        if backend == "local":
            assert isinstance(task, LocalProcessOperator)
            assert task.command == command(step)
            assert task.env["RUN_DATE"] == "{{ esteira_run_date(dag_run) }}"
            continue
        assert isinstance(task, EcsRunTaskOperator)
        assert task.cluster == f"ml-cluster-{project}"
        assert task.capacity_provider_strategy == [{"capacityProvider": f"cp-{project}", "weight": 1, "base": 0}]
        [container] = task.overrides["containerOverrides"]
        assert container["command"] == command(step)


def test_every_dag_serializes_as_the_scheduler_stores_it(bag: tuple[str, DagBag]) -> None:
    """MWAA's scheduler and webserver read DAGs from their serialized form: it must round-trip."""
    _, dagbag = bag
    for dag in dagbag.dags.values():
        data = SerializedDAG.to_dict(dag)
        SerializedDAG.validate_schema(data)
        back = SerializedDAG.from_dict(data)
        assert [t.task_id for t in back.tasks] == [t.task_id for t in dag.tasks]
        assert back.timetable == dag.timetable  # found through esteira's plugin, as the scheduler does


def test_a_broken_project_leaves_the_others_loaded_and_shows_its_error(
    projects_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = projects_dir / "broken" / "config.yaml"
    broken.parent.mkdir()
    text = (PROJECTS / "recsys" / "config.yaml").read_text()
    broken.write_text(text.replace("project_name: recsys", "project_name: broken").replace("cron: ", "cron: x", 1))
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    dagbag = DagBag(dag_folder=str(DAGS), include_examples=False)
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {*CONFIGS, "broken"}
    assert "esteira:config-error" in dagbag.dags["broken"].tags
    assert "schedule.cron" in dagbag.dags["broken"].doc_md
    assert dagbag.dags["broken"].is_paused_upon_creation is True
    for name in CONFIGS:
        assert "esteira:config-error" not in dagbag.dags[name].tags


@pytest.mark.parametrize("project", sorted(CONFIGS))
def test_a_step_functions_owned_dag_plans_backfills_but_never_a_scheduled_run(
    project: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What Airflow 2.11's scheduler and `airflow dags backfill` ask the serialized DAG."""
    monkeypatch.setenv("ESTEIRA_BACKEND", "ecs")
    dag = DagBag(dag_folder=str(DAGS), include_examples=False).dags[project]
    dag = SerializedDAG.from_dict(SerializedDAG.to_dict(dag))
    assert dag.next_dagrun_info(None) is None  # the scheduler's question: nothing, ever
    assert dag.next_dagrun_info(None, restricted=False) is None
    start, end = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)
    planned = [info.logical_date for info in dag.iter_dagrun_infos_between(start, end)]
    expected = [run.instant for run in plan_backfill(CONFIGS[project]["schedule"]["cron"],
                                                     CONFIGS[project]["schedule"].get("timezone", "UTC"), start, end)]
    assert planned == expected and planned  # the instants `esteira backfill` starts on AWS
