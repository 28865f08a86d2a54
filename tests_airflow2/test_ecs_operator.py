"""Under Airflow 2.11 and amazon provider 9.8.0 (what MWAA's Airflow 2 runs), esteira's ECS operator
builds from the real dags/ folder and spends its budgets as under Airflow 3.

The operator uses the provider's RunTask, reattach and log reader, whose private methods differ
between 9.8.0 and the Airflow 3 provider (tests/test_ecs_infra_retries.py runs it there end to end);
here `execute` runs against moto's ECS, each task stopped at once as a failure script says.
Expectations come from the YAML files (plain PyYAML) and tests/failure_scripts.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from airflow.exceptions import AirflowException, AirflowFailException
from airflow.models.dagbag import DagBag
from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator as ProviderEcsRunTaskOperator
from failure_scripts import APP_FAIL, HOST_GONE, NOT_STARTED, OK, SPOT, Stop
from moto import mock_aws
from moto.ecs.models import EC2ContainerServiceBackend, Task

from config_oracle import CONFIGS, ENVIRONMENTS, steps
from conftest import DAGS
from esteira.airflow import ecs_operator
from esteira.airflow.ecs_operator import (
    ApplicationFailure,
    EcsRunTaskOperator,
    InfrastructureFailure,
    try_timeout_seconds,
)

REGION = ENVIRONMENTS["dev"]["region"]


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
def ecs(monkeypatch: pytest.MonkeyPatch, dags: DagBag) -> Iterator[tuple[EcsRunTaskOperator, list[Stop], list[str]]]:
    """recsys's first step on moto (FARGATE_SPOT: no instances to register); RunTask's i-th task stops at
    once as the i-th scripted Stop says. Yields the operator, the script to fill, and the tasks started."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/nonexistent",
                       "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AIRFLOW_CONN_AWS_DEFAULT": "aws://",
                       "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(var, value)
    script: list[Stop] = []
    started: list[str] = []
    real_run, real_stop = EC2ContainerServiceBackend.run_task, EC2ContainerServiceBackend.stop_task

    def run_task(backend: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> list[Task]:
        tasks = real_run(backend, *args, **kwargs)
        for task in tasks:
            stop = script[len(started)]
            started.append(task.task_arn)
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


@pytest.mark.parametrize(("stops", "raised", "waits"), [
    ((SPOT, NOT_STARTED, OK), None, [60, 120]),
    ((SPOT, APP_FAIL), ApplicationFailure, [60]),
    ((SPOT, NOT_STARTED, HOST_GONE, SPOT), InfrastructureFailure, [60, 120, 240]),
], ids=["infra-then-success", "infra-then-application", "infra-past-budget"])
def test_one_try_spends_the_infrastructure_budget_under_provider_9_8(
    ecs: tuple[EcsRunTaskOperator, list[Stop], list[str]], monkeypatch: pytest.MonkeyPatch,
    stops: tuple[Stop, ...], raised: type[Exception] | None, waits: list[float],
) -> None:
    op, script, started = ecs
    script.extend(stops)
    recorded: list[float] = []
    monkeypatch.setattr(ecs_operator, "sleep", recorded.append)
    assert (op.infra_retries, op.infra_retry_delay_seconds) == (3, 60)  # the schema's defaults
    if raised is None:
        op.execute(context(op))
    else:
        with pytest.raises(raised) as error:
            op.execute(context(op))
        # Airflow 2's own classes: AirflowFailException is not retried, AirflowException is
        assert isinstance(error.value, AirflowFailException if raised is InfrastructureFailure else AirflowException)
        assert not isinstance(error.value, AirflowFailException) or raised is InfrastructureFailure
    assert len(started) == len(set(started)) == len(stops)  # a new task each attempt
    assert recorded == waits
