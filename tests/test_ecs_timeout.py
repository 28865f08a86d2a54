"""A step that outlives its timeout_seconds does not leave its ECS task running (ecs backend, Airflow 3).

User-level guarantee: when an ECS task of a step runs past the step's `timeout_seconds`, the Airflow
try fails AND that ECS task is stopped, so a hung job neither keeps its instance busy nor keeps
writing after Airflow gave up on it. The timeout is per ECS task, as on Step Functions: esteira's
operator (esteira.airflow.ecs_operator) stops the task itself (StopTask, reason "esteira: step
timeout"); Airflow's `execution_timeout` is only the outer guard around the whole try (up to
1 + infra_retries tasks), and its on_kill path is held in test_ecs_infra_retries.

End to end and in-process: a copy of recsys cut to one step with `timeout_seconds: 5`, the real
dags/ folder parsed by Airflow's DagBag with the ecs backend, and the run made by `dag.test()`,
which in Airflow 3 runs each task through the SDK's task runner in this process. ECS is moto,
with what the operator's RunTask names: the cluster, the capacity provider (an auto scaling group
whose instance is registered with the cluster), the task definition and dev's awsvpc network.

moto quirks handled here: its ECS ends a task by itself after a few DescribeTasks (`ecs::task`'s
default state transition advances on every describe, although the containers stay PENDING); the
test pins tasks RUNNING, as a hung job is, so only a StopTask can stop one. moto's StopTask sets
desiredStatus/lastStatus/stoppedReason but no stopCode. A watchdog ends the moto task without
StopTask if the step's timeout ever fails to fire, so that regression fails this test (the run then
fails for another reason, late) instead of hanging the suite.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator
from airflow.providers.amazon.aws.utils.task_log_fetcher import AwsTaskLogFetcher
from moto import mock_aws
from moto.ecs.models import EC2ContainerServiceBackend
from moto.moto_api import state_manager

from conftest import DAGS, PROJECTS
from esteira.airflow.ecs_operator import STOP_REASON, try_timeout_seconds

PROJECT = "recsys"
STEP_TIMEOUT = 5  # seconds: the step's timeout_seconds in the config under test
WATCHDOG = 40  # seconds into dag.test(): by then the step's timeout has fired, or never will
LOGICAL = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
DEV = yaml.safe_load((PROJECTS / "environments.yaml").read_text())["dev"]
# The reason the provider's on_kill gives ECS (Airflow's execution_timeout, a kill): not this test's
# path any more, test_ecs_infra_retries holds it. The provider's other StopTask (after a WaiterError,
# with stop_task_on_failure) says "Task failed after creation; cleanup by Airflow".
ON_KILL_REASON = "Task killed by the user"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in dev's account and region, fake credentials, `aws_default` resolvable from the env."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", DEV["region"])
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://")
    monkeypatch.setenv("MOTO_ACCOUNT_ID", DEV["account_id"])
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # ~1 s, unused
    with mock_aws():
        # a started task stays RUNNING (a hung job) until something calls StopTask
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": sys.maxsize})
        try:
            yield
        finally:
            state_manager.unset_transition("ecs::task")


def create_network() -> tuple[list[str], str]:
    """A VPC with two subnets and a security group; moto picks the ids."""
    ec2 = boto3.client("ec2", region_name=DEV["region"])
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as awsvpc tasks' VPCs have it
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    group = ec2.create_security_group(GroupName="jobs", Description="jobs", VpcId=vpc)["GroupId"]
    return subnets, group


def write_projects(tmp_path: Path, subnets: list[str], group: str) -> Path:
    """projects/ with dev's network set to moto's ids, and recsys cut to its first step, timed out at 5 s."""
    dest = tmp_path / "projects"
    dest.mkdir()
    envs = yaml.safe_load((PROJECTS / "environments.yaml").read_text())
    envs["local"]["home"] = "../home"
    envs["dev"]["network"].update(subnets=subnets, security_groups=[group])
    (dest / "environments.yaml").write_text(yaml.safe_dump(envs, sort_keys=False))
    cfg = yaml.safe_load((PROJECTS / PROJECT / "config.yaml").read_text())
    step = cfg["batch"]["pipeline"]["steps"][0]
    step.update(timeout_seconds=STEP_TIMEOUT, retries=0)  # one try: the run ends when it times out
    step.pop("depends_on", None)
    cfg["batch"]["pipeline"]["steps"] = [step]
    assert cfg["schedule"]["timeout_seconds"] >= 10 * STEP_TIMEOUT  # the run's own timeout is not what fires
    (dest / PROJECT).mkdir()
    (dest / PROJECT / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


def create_platform(op: EcsRunTaskOperator, subnet: str) -> None:
    """What the operator's RunTask needs, under the names its request uses.

    The capacity provider is backed by an auto scaling group whose instance is registered with
    the cluster (moto places a non-Fargate task on a registered container instance).
    """
    region = DEV["region"]
    ec2 = boto3.client("ec2", region_name=region)
    autoscaling = boto3.client("autoscaling", region_name=region)
    ecs = boto3.client("ecs", region_name=region)
    [strategy] = op.capacity_provider_strategy
    provider = strategy["capacityProvider"]

    ec2.create_launch_template(LaunchTemplateName=f"lt-{PROJECT}", LaunchTemplateData={
        "ImageId": "ami-0123456789abcdef0", "InstanceType": "t3.xlarge"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=f"asg-{PROJECT}", LaunchTemplate={"LaunchTemplateName": f"lt-{PROJECT}"},
        MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=subnet)
    [group] = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[f"asg-{PROJECT}"])["AutoScalingGroups"]
    ecs.create_capacity_provider(name=provider, autoScalingGroupProvider={
        "autoScalingGroupArn": group["AutoScalingGroupARN"], "managedTerminationProtection": "DISABLED"})
    ecs.create_cluster(clusterName=op.cluster, capacityProviders=[provider], defaultCapacityProviderStrategy=[strategy])
    for instance in group["Instances"]:
        ecs.register_container_instance(cluster=op.cluster,
                                        instanceIdentityDocument=json.dumps({"instanceId": instance["InstanceId"]}))
    ecs.register_task_definition(
        family=op.task_definition, networkMode="awsvpc", requiresCompatibilities=["EC2"], cpu="1024", memory="4096",
        executionRoleArn=DEV["roles"]["task_execution"], taskRoleArn=DEV["roles"]["task"],
        containerDefinitions=[{
            "name": op.container_name, "image": f"{DEV['ecr_repository']}:{PROJECT}-test", "essential": True,
            "memory": 1024,  # moto places tasks by their containers' memory
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": op.awslogs_group, "awslogs-region": region, "awslogs-stream-prefix": "ecs"}}}])
    boto3.client("logs", region_name=region).create_log_group(logGroupName=op.awslogs_group)


def record_calls(monkeypatch: pytest.MonkeyPatch, *names: str) -> dict[str, list[datetime]]:
    """When moto served each of these ECS calls (the behaviour is moto's own)."""
    calls: dict[str, list[datetime]] = {name: [] for name in names}

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            calls[name].append(datetime.now(UTC))
            return result
        return call

    for name in names:
        monkeypatch.setattr(EC2ContainerServiceBackend, name, spy(name, getattr(EC2ContainerServiceBackend, name)))
    return calls


def ecs_tasks(cluster: str, desired: str | None = None) -> list[dict[str, Any]]:
    ecs = boto3.client("ecs", region_name=DEV["region"])
    arns = ecs.list_tasks(cluster=cluster, **({"desiredStatus": desired} if desired else {}))["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])["tasks"] if arns else []


def parse_ecs_step(monkeypatch: pytest.MonkeyPatch, projects: Path) -> tuple[Any, EcsRunTaskOperator]:
    """The one-step DAG and its operator, as Airflow parses the real dags/ folder with the ecs backend
    in dev. The settings go in the environment: dag.test() re-parses the folder to serialize the DAG."""
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("ESTEIRA_BACKEND", "ecs")
    monkeypatch.setenv("ESTEIRA_ENV", "dev")
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    dag = bag.dags[PROJECT]
    [op] = dag.tasks
    assert isinstance(op, EcsRunTaskOperator)
    return dag, op


@pytest.mark.usefixtures("airflow_db", "aws")
def test_a_step_that_times_out_stops_its_ecs_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    subnets, group = create_network()
    projects = write_projects(tmp_path, subnets, group)
    dag, task = parse_ecs_step(monkeypatch, projects)
    assert task.task_timeout_seconds == STEP_TIMEOUT  # the config's timeout_seconds, per ECS task
    # Airflow's, for the whole try: every ECS task the infrastructure budget allows, and the waits
    assert task.execution_timeout == timedelta(seconds=try_timeout_seconds(
        STEP_TIMEOUT, task.infra_retries, task.infra_retry_delay_seconds))
    assert task.execution_timeout > timedelta(seconds=WATCHDOG)  # so it is not what fires here
    create_platform(task, subnets[0])
    calls = record_calls(monkeypatch, "run_task", "stop_task")

    def end_the_task_without_stop_task() -> None:  # only if the step's timeout never fires
        state_manager.set_transition("ecs::task", {"progression": "immediate"})

    watchdog = threading.Timer(WATCHDOG, end_the_task_without_stop_task)
    watchdog.start()
    started = time.monotonic()
    try:
        run = dag.test(logical_date=LOGICAL)
    finally:
        elapsed = time.monotonic() - started
        watchdog.cancel()
        for thread in threading.enumerate():  # the operator's CloudWatch reader ends before moto does
            if isinstance(thread, AwsTaskLogFetcher):
                thread.join(timeout=10)
    log = capsys.readouterr().out

    # Airflow: the one try failed, on the step's timeout (the operator says so in the task's log)
    ti = run.get_task_instance(task.task_id)
    assert (run.state, ti.state, ti.try_number) == ("failed", "failed", 1)
    assert elapsed < WATCHDOG, "the step's timeout never fired"
    assert f"step {task.task_id}: timeout: ECS task" in log
    assert "esteira.airflow.ecs_operator.StepTimeout" in log
    assert "AirflowTaskTimeout" not in log  # the outer guard did not have to fire

    # ECS: the one task the step started is stopped, by the operator, not left RUNNING; a timeout is
    # the application's failure, not the infrastructure's: no second task in the try
    assert len(ecs_tasks(task.cluster)) == 1
    assert ecs_tasks(task.cluster, "RUNNING") == [], "the step timed out but its ECS task is still RUNNING"
    [stopped] = ecs_tasks(task.cluster, "STOPPED")
    assert (stopped["desiredStatus"], stopped["lastStatus"]) == ("STOPPED", "STOPPED")
    assert stopped["stoppedReason"] == STOP_REASON
    assert {t["key"]: t["value"] for t in stopped["tags"]} == {
        "esteira:project": PROJECT, "esteira:step": task.task_id, "esteira:env": "dev"}
    assert stopped["capacityProviderName"] == task.capacity_provider_strategy[0]["capacityProvider"]

    # when: the deadline is set before RunTask, so StopTask comes at most the timeout after it (plus a
    # DescribeTasks), and before Airflow records the failure; the try lasted the timeout at least
    [run_at], [stop_at] = calls["run_task"], calls["stop_task"]
    assert run_at < stop_at <= ti.end_date
    assert stop_at - run_at <= timedelta(seconds=STEP_TIMEOUT + 2), stop_at - run_at
    assert ti.end_date - ti.start_date >= timedelta(seconds=STEP_TIMEOUT)
