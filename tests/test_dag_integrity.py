"""The real dags/ folder, parsed by Airflow's DagBag, holds exactly the DAGs the configs describe.

Expectations are read from the YAML files with plain PyYAML, independently of esteira's model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator

from config_oracle import CONFIGS, ENVIRONMENTS, command, expected_edges
from conftest import DAGS, PROJECTS
from esteira.airflow.local_operator import LocalProcessOperator
from esteira.airflow.timetable import EsteiraTimetable


@pytest.fixture(scope="module", params=["local", "ecs"])
def bag(request: pytest.FixtureRequest) -> Iterator[tuple[str, DagBag]]:
    os.environ["ESTEIRA_BACKEND"] = request.param
    try:
        yield request.param, DagBag(dag_folder=str(DAGS))
    finally:
        os.environ.pop("ESTEIRA_BACKEND")


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
    assert [t.task_id for t in dag.tasks] == [s["id"] for s in cfg["batch"]["pipeline"]["steps"]]
    edges = {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}
    assert edges == expected_edges(cfg)


@pytest.mark.parametrize("project", sorted(CONFIGS))
def test_dag_level_settings_come_from_the_config(bag: tuple[str, DagBag], project: str) -> None:
    backend, dagbag = bag
    cfg = CONFIGS[project]
    sched = cfg["schedule"]
    dag = dagbag.dags[project]
    assert isinstance(dag.timetable, EsteiraTimetable)  # fires at the cron instants EventBridge fires
    assert dag.timetable.cron == sched["cron"]
    assert dag.timetable.timezone == sched.get("timezone", "UTC")
    assert dag.timetable.periodic  # backfills are offered
    # on AWS, Step Functions fires a step_functions project: Airflow schedules nothing, so the DAG
    # is unpaused (Airflow 3 runs no manual run or backfill of a paused DAG)
    owned_by_aws = backend == "ecs" and cfg["batch"]["orchestrator"] == "step_functions"
    assert dag.timetable.can_be_scheduled is not owned_by_aws
    assert dag.is_paused_upon_creation is (False if owned_by_aws else None)
    assert dag.max_active_runs == sched.get("max_active_runs", 1)
    assert dag.catchup is sched.get("catchup", False)
    assert dag.dagrun_timeout == timedelta(seconds=sched["timeout_seconds"])
    assert {"esteira", f"project:{project}", f"orchestrator:{cfg['batch']['orchestrator']}"} <= set(dag.tags)
    assert cfg["description"].split()[0] in dag.doc_md
    assert dag.owner == cfg["owners"]["tech_owner"]
    assert (dag.on_failure_callback is not None) == bool(cfg["notifications"].get("on_failure"))
    assert (dag.on_success_callback is not None) == bool(cfg["notifications"].get("on_success"))


@pytest.mark.parametrize("project", sorted(CONFIGS))
def test_each_task_runs_the_steps_command_with_its_retries_timeout_and_environment(
    bag: tuple[str, DagBag], project: str,
) -> None:
    backend, dagbag = bag
    cfg = CONFIGS[project]
    sched = cfg["schedule"]
    dev = ENVIRONMENTS["dev"]
    for step in cfg["batch"]["pipeline"]["steps"]:
        task = dagbag.dags[project].get_task(step["id"])
        assert task.retries == step.get("retries", sched["retries"])
        timeout = step.get("timeout_seconds", sched["timeout_seconds"])
        # ecs: timeout_seconds bounds each ECS task, execution_timeout the whole try (esteira.airflow.ecs_operator)
        assert (task.execution_timeout.total_seconds() if backend == "local" else task.task_timeout_seconds) == timeout
        assert task.retry_delay == timedelta(seconds=sched.get("retry_delay_seconds", 60))
        assert task.task_display_name == step["name"]
        want_env = {**cfg["runtime"].get("env_vars", {}), **step.get("env_vars", {}),
                    "ENV": "local" if backend == "local" else "dev",
                    "MLFLOW_EXPERIMENT_NAME": project,
                    "RUN_DATE": "{{ esteira_run_date(dag_run) }}", "RUN_ID": "{{ dag_run.run_id }}"}
        if backend == "local":
            assert isinstance(task, LocalProcessOperator)
            assert task.command == command(step)
            assert Path(task.cwd) == PROJECTS / project
            assert want_env.items() <= task.env.items()
            assert task.env["MLFLOW_TRACKING_URI"].startswith("sqlite:///")
            continue
        assert isinstance(task, EcsRunTaskOperator)
        assert task.cluster == f"ml-cluster-{project}"
        assert task.task_definition == project
        # the spot capacity provider, never the operator's default launch_type="EC2"
        assert task.capacity_provider_strategy == [{"capacityProvider": f"cp-{project}", "weight": 1, "base": 0}]
        assert task.network_configuration == {"awsvpcConfiguration": {
            "subnets": dev["network"]["subnets"], "securityGroups": dev["network"]["security_groups"],
            "assignPublicIp": "DISABLED"}}
        assert task.awslogs_group == f"/ecs/{project}"
        assert task.awslogs_region == dev["region"]
        assert task.reattach is True
        [container] = task.overrides["containerOverrides"]
        assert container["name"] == project
        assert container["command"] == command(step)
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert want_env.items() <= env.items()
        assert env["MLFLOW_TRACKING_URI"] == dev["mlflow"]["tracking_uri"]
        assert env["MLFLOW_S3_ENDPOINT_URL"] == dev["mlflow"]["s3_endpoint_url"]
        assert container["cpu"] == int(step["resources"]["cpu"] * 1024)
        assert container["memory"] == int(step["resources"]["memory_gb"] * 1024)


def test_a_broken_project_leaves_the_others_loaded_and_shows_its_error(
    projects_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = projects_dir / "broken" / "config.yaml"
    broken.parent.mkdir()
    broken.write_text((PROJECTS / "recsys" / "config.yaml").read_text()
                      .replace("project_name: recsys", "project_name: broken")
                      .replace('cron: "0 3 * * *"', 'cron: "0 3 * *"'))
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    dagbag = DagBag(dag_folder=str(DAGS))
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {*CONFIGS, "broken"}
    for name in CONFIGS:
        assert "esteira:config-error" not in dagbag.dags[name].tags
        assert len(dagbag.dags[name].tasks) == len(CONFIGS[name]["batch"]["pipeline"]["steps"])
    error_dag = dagbag.dags["broken"]
    assert "esteira:config-error" in error_dag.tags
    assert f"{broken}:13: schedule.cron" in error_dag.doc_md
    assert type(error_dag.timetable).__name__ == "NullTimetable"


def test_a_broken_environments_file_is_shown_on_every_project(
    projects_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_file = projects_dir / "environments.yaml"
    env_file.write_text(env_file.read_text().replace("region: us-east-1", "region: mars-1", 1))
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    dagbag = DagBag(dag_folder=str(DAGS))
    assert dagbag.import_errors == {}
    for name in CONFIGS:
        assert "esteira:config-error" in dagbag.dags[name].tags
        assert "dev.region" in dagbag.dags[name].doc_md
