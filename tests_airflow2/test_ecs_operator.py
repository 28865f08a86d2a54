"""Under Airflow 2.11 and amazon provider 9.8.0 (what MWAA's Airflow 2 runs), esteira's ECS operator
builds from the real dags/ folder and spends its budgets as under Airflow 3.

The operator uses the provider's RunTask, reattach and log reader, whose private methods differ
between 9.8.0 and the Airflow 3 provider (tests/test_ecs_infra_retries.py runs it there end to end);
here `execute` runs against moto's ECS, each task stopped at once as a failure script says.
Expectations come from the YAML files (plain PyYAML) and tests/failure_scripts.py.

Deferrable (environments.yaml's `deferrable_steps`) works under 2.11 too: its triggers call AWS with
boto3 in a thread, so they need no aiobotocore (not installed with provider 9.8.0). The same tries
run deferred, driven as Airflow 2's triggerer and scheduler would: each trigger rebuilt from its
serialize() (JSON), run to its event, the task resumed with `resume_execution`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from airflow.exceptions import AirflowException, AirflowFailException, TaskDeferralError, TaskDeferred
from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
from airflow.models.dagbag import DagBag
from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator as ProviderEcsRunTaskOperator
from airflow.utils.module_loading import import_string
from failure_scripts import APP_FAIL, HOST_GONE, NOT_STARTED, OK, SPOT, Stop
from moto import mock_aws
from moto.ecs.models import EC2ContainerServiceBackend, Task

from config_oracle import CONFIGS, ENVIRONMENTS, steps
from conftest import DAGS
from esteira.airflow import ecs_operator
from esteira.airflow.compat import TRIGGER_FAIL, TRIGGER_TIMEOUT_ERRORS
from esteira.airflow.ecs_operator import (
    ApplicationFailure,
    EcsRunTaskOperator,
    InfrastructureFailure,
    try_timeout_seconds,
)
from esteira.airflow.ecs_trigger import EsteiraEcsTaskTrigger, EsteiraWaitTrigger

REGION = ENVIRONMENTS["dev"]["region"]
ON_KILL_REASON = "Task killed by the user"  # the provider's on_kill
STUCK = None  # a scripted task that keeps RUNNING


@pytest.fixture(scope="module")
def dags() -> Iterator[DagBag]:
    os.environ["ESTEIRA_BACKEND"] = "ecs"
    try:
        yield DagBag(dag_folder=str(DAGS), include_examples=False)
    finally:
        os.environ.pop("ESTEIRA_BACKEND")


@pytest.mark.parametrize("project", sorted(CONFIGS))
def test_each_ecs_step_is_esteiras_operator_with_both_budgets(dags: DagBag, project: str) -> None:
    assert dags.import_errors == {}
    sched = CONFIGS[project]["schedule"]
    for step in steps(CONFIGS[project]):
        task = dags.dags[project].get_task(step["id"])
        assert type(task) is EcsRunTaskOperator and isinstance(task, ProviderEcsRunTaskOperator)
        timeout = step.get("timeout_seconds", sched["timeout_seconds"])
        infra = step.get("infra_retries", sched.get("infra_retries", 3))
        delay = sched.get("infra_retry_delay_seconds", 60)
        assert (task.task_timeout_seconds, task.infra_retries) == (timeout, infra)
        assert task.infra_retry_delay_seconds == delay
        assert task.execution_timeout == timedelta(seconds=try_timeout_seconds(timeout, infra, delay))
        assert task.execution_timeout > timedelta(seconds=timeout * (1 + infra))
        assert task.reattach is True and task.deferrable is False


@pytest.fixture
def ecs(monkeypatch: pytest.MonkeyPatch,
        dags: DagBag) -> Iterator[tuple[EcsRunTaskOperator, list[Stop | None], list[str]]]:
    """recsys's first step on moto (FARGATE_SPOT: no instances to register); RunTask's i-th task stops at
    once as the i-th scripted Stop says (STUCK: it runs on). Yields the operator, the script to fill, and
    the tasks started."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/nonexistent",
                       "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AIRFLOW_CONN_AWS_DEFAULT": "aws://",
                       "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(var, value)
    script: list[Stop | None] = []
    started: list[str] = []
    real_run, real_stop = EC2ContainerServiceBackend.run_task, EC2ContainerServiceBackend.stop_task

    def run_task(backend: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> list[Task]:
        tasks = real_run(backend, *args, **kwargs)
        for task in tasks:
            stop = script[len(started)]
            started.append(task.task_arn)
            if stop is STUCK:
                continue
            real_stop(backend, task.cluster_name, task.task_arn, stop.stopped_reason)
            task.stop_code = stop.stop_code
            [container] = task.containers
            container.last_status, container.exitCode = "STOPPED", stop.exit_code
            if stop.container_reason is not None:
                container.reason = stop.container_reason
        return tasks

    with mock_aws():
        monkeypatch.setattr(EC2ContainerServiceBackend, "run_task", run_task)
        op = dags.dags["recsys"].tasks[0]
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="jobs", Description="jobs", VpcId=vpc)["GroupId"]
        client = boto3.client("ecs", region_name=REGION)
        client.create_cluster(clusterName=op.cluster)
        client.register_task_definition(
            family=op.task_definition, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024",
            memory="4096", containerDefinitions=[{"name": op.container_name, "image": "job", "memory": 1024}])
        boto3.client("logs", region_name=REGION).create_log_group(logGroupName=op.awslogs_group)
        monkeypatch.setattr(op, "capacity_provider_strategy", [{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
        monkeypatch.setattr(op, "network_configuration", {"awsvpcConfiguration": {
            "subnets": [subnet], "securityGroups": [group]}})
        monkeypatch.setattr(op, "awslogs_fetch_interval", timedelta(seconds=0.1))  # 9.8.0 sleeps it before a read
        yield op, script, started


def context(op: EcsRunTaskOperator) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id=op.dag_id, task_id=op.task_id, run_id="manual__2026-11-20T03:00:00+00:00",
                         map_index=-1, xcom_push=lambda **_: None)
    return {"ti": ti}


def run_try(op: EcsRunTaskOperator, ctx: dict[str, Any], waits: list[float]) -> Any:
    """One try: execute, then, while the operator defers, its trigger rebuilt from serialize() and run
    to its event (an infrastructure wait is recorded in `waits`, not waited) and the task resumed."""
    call = functools.partial(op.execute, ctx)
    while True:
        try:
            return call()
        except TaskDeferred as deferred:
            classpath, kwargs = deferred.trigger.serialize()
            assert classpath.startswith("esteira.airflow.ecs_trigger.")
            trigger = import_string(classpath)(**json.loads(json.dumps(kwargs)))
            if isinstance(trigger, EsteiraWaitTrigger):
                waits.append(trigger.delay_seconds)
                trigger.moment = time.time()
            event = asyncio.run(anext(trigger.run()))
            call = functools.partial(op.resume_execution, deferred.method_name, {"event": event.payload}, ctx)


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferrable"])
@pytest.mark.parametrize(("stops", "raised", "waits"), [
    ((SPOT, NOT_STARTED, OK), None, [60, 120]),
    ((SPOT, APP_FAIL), ApplicationFailure, [60]),
    ((SPOT, NOT_STARTED, HOST_GONE, SPOT), InfrastructureFailure, [60, 120, 240]),
], ids=["infra-then-success", "infra-then-application", "infra-past-budget"])
def test_one_try_spends_the_infrastructure_budget_under_provider_9_8(
    ecs: tuple[EcsRunTaskOperator, list[Stop], list[str]], monkeypatch: pytest.MonkeyPatch,
    stops: tuple[Stop, ...], raised: type[Exception] | None, waits: list[float], deferrable: bool,
) -> None:
    op, script, started = ecs
    script.extend(stops)
    recorded: list[float] = []
    monkeypatch.setattr(op, "deferrable", deferrable)  # test_deferrable_steps_flows_from_environments_yaml
    if deferrable:  # the waits are the wait trigger's; the worker never sleeps
        monkeypatch.setattr(ecs_operator, "sleep", lambda seconds: pytest.fail(f"slept {seconds}s in the worker"))
    else:
        monkeypatch.setattr(ecs_operator, "sleep", recorded.append)
    assert (op.infra_retries, op.infra_retry_delay_seconds) == (3, 60)  # the schema's defaults
    if raised is None:
        run_try(op, context(op), recorded)
    else:
        with pytest.raises(raised) as error:
            run_try(op, context(op), recorded)
        # Airflow 2's own classes: AirflowFailException is not retried, AirflowException is
        assert isinstance(error.value, AirflowFailException if raised is InfrastructureFailure else AirflowException)
        assert not isinstance(error.value, AirflowFailException) or raised is InfrastructureFailure
    assert len(started) == len(set(started)) == len(stops)  # a new task each attempt
    assert recorded == waits


def test_deferrable_steps_flows_from_environments_yaml(projects_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = projects_dir / "environments.yaml"
    text = env_file.read_text()
    marker = "  data_root: s3://rentcars-ml-dev"
    assert text.count(marker) == 1
    env_file.write_text(text.replace(marker, "  deferrable_steps: true\n" + marker))
    for var, value in {"ESTEIRA_PROJECTS_DIR": str(projects_dir), "ESTEIRA_BACKEND": "ecs", "ESTEIRA_ENV": "dev",
                       "ESTEIRA_CACHE_DIR": "off"}.items():
        monkeypatch.setenv(var, value)
    dags = DagBag(dag_folder=str(DAGS), include_examples=False)
    assert dags.import_errors == {}
    tasks = [task for dag in dags.dags.values() for task in dag.tasks]
    assert {type(task) for task in tasks} == {EcsRunTaskOperator}
    assert all(task.deferrable is True for task in tasks)
    monkeypatch.setenv("ESTEIRA_ENV", "prd")  # prd does not set it
    prd = DagBag(dag_folder=str(DAGS), include_examples=False)
    assert all(task.deferrable is False for dag in prd.dags.values() for task in dag.tasks)


def test_a_trigger_timeout_stops_the_tries_running_task_under_airflow_2(
    ecs: tuple[EcsRunTaskOperator, list[Stop | None], list[str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airflow 2's scheduler fails a deferred task whose trigger outlived its timeout (the earlier of
    the deferral's and the try's execution_timeout) with this error; esteira stops the task first."""
    [error] = [e for e in TRIGGER_TIMEOUT_ERRORS if f'"{e}"' in inspect.getsource(SchedulerJobRunner)]
    op, script, started = ecs
    script.append(STUCK)
    monkeypatch.setattr(op, "deferrable", True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(op))
    assert isinstance(deferred.value.trigger, EsteiraEcsTaskTrigger)
    with pytest.raises(TaskDeferralError):
        op.resume_execution(TRIGGER_FAIL, {"error": error}, context(op))
    [arn] = started
    [task] = boto3.client("ecs", region_name=REGION).describe_tasks(cluster=op.cluster, tasks=[arn])["tasks"]
    assert (task["lastStatus"], task["stoppedReason"]) == ("STOPPED", ON_KILL_REASON)
