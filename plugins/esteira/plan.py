"""The Plan: one project on one target, complete and orchestrator-neutral. Renderers read only this.

`build_plan(project, target)` is the only place that reads the config model: per step the exact
argv, the literal and the platform environment, cpu/memory, retries, delays and timeouts; the
graph; every name and ARN; the schedule and who owns it; notifications; the compute; labels.
The Airflow DAG, the ASL, the schedules and the stack are renderings of it, so they cannot
disagree on a value. The run's identity (RUN_DATE, RUN_ID) stays a RunValue placeholder, since
each orchestrator knows it differently (Airflow's dag run, the scheduler's input in Step
Functions); renderers substitute it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from esteira.aws_cron import to_aws_cron
from esteira.config import Project
from esteira.environments import AwsEnvironment, Environments
from esteira.errors import ConfigError, Problem
from esteira.graph import Graph
from esteira.naming import ProjectNames
from esteira.run_values import RunValue
from esteira.s3_trigger import MAX_KEY_BYTES, bucket_for, event_pattern

ECS_OVERRIDES_LIMIT = 8192  # characters, RunTask's containerOverrides cap
_LONGEST_RUN_ID = "x" * 250  # Airflow's run_id limit; longer than a Step Functions execution name
_LONGEST_RUN_DATE = "2026-11-24T03:00:00Z"
_LONGEST = {RunValue.RUN_DATE: _LONGEST_RUN_DATE, RunValue.RUN_ID: _LONGEST_RUN_ID,
            RunValue.TRIGGER_BUCKET: "x" * 63, RunValue.TRIGGER_KEY: "x" * MAX_KEY_BYTES}


# The keys of a Step Functions execution's input that carry the run's identity: EventBridge
# Scheduler sends them (esteira.schedules), the state machine reads them (esteira.asl).
INPUT_RUN_DATE, INPUT_RUN_ID = "run_date", "run_id"


EnvValue = str | RunValue
Resolver = Callable[[RunValue], str]
# How a renderer writes a config's literal value: as is, except where the target would otherwise
# interpret it (Airflow renders template fields with Jinja: esteira.airflow.templates.literal).
Literal = Callable[[str], str]


def as_is(value: str) -> str:
    return value


@dataclass(frozen=True)
class Target:
    """Where a project runs: 'local' (this machine) or an AWS environment (dev, prd)."""

    env: str
    mlflow_tracking_uri: str
    mlflow_s3_endpoint_url: str | None
    data_root: str
    aws: AwsEnvironment | None
    local_schedules: bool = True  # local target: does Airflow fire the schedules (environments.yaml)

    @classmethod
    def local(cls, environments: Environments, mlflow_tracking_uri: str | None = None) -> Target:
        """This machine; MLflow is the sqlite file under local.home unless a server is given."""
        local = environments.local
        return cls("local", mlflow_tracking_uri or local.mlflow_tracking_uri, None, local.data_root, None,
                   local.schedules_enabled)

    @classmethod
    def aws_env(cls, environments: Environments, env: str) -> Target:
        aws = environments.aws(env)
        return cls(env, aws.mlflow.tracking_uri, aws.mlflow.s3_endpoint_url, aws.data_root, aws)


@dataclass(frozen=True)
class Placement:
    """Where ECS runs the project's tasks (the same for every step)."""

    region: str
    aws_conn_id: str
    cluster: str
    task_definition: str
    container_name: str
    capacity_provider: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: bool
    log_group: str
    log_stream_prefix: str
    # Airflow waits for the ECS tasks in its triggerer rather than a worker (environments.yaml's
    # deferrable_steps); Step Functions ignores it, it never holds a worker
    deferrable: bool = False

    @property
    def task_log_prefix(self) -> str:
        """awslogs names a task's stream `<this>/<task id>`: the stream prefix, then the container."""
        return f"{self.log_stream_prefix}/{self.container_name}"


@dataclass(frozen=True)
class StepPlan:
    step_id: str
    display_name: str
    command: tuple[str, ...]
    literal_env: tuple[tuple[str, str], ...]  # the config's env_vars (project's, then the step's)
    platform_env: tuple[tuple[str, EnvValue], ...]  # what esteira sets: ENV, MLFLOW_*, DATA_ROOT, RUN_*
    cpu_units: int
    memory_mib: int
    retries: int  # the application's budget: a non-zero exit code, a timeout
    retry_delay_seconds: int
    infra_retries: int  # the infrastructure's budget (esteira.ecs_failures), spent apart
    infra_retry_delay_seconds: int  # the first wait; each next one doubles (INFRA_BACKOFF_RATE)
    timeout_seconds: int
    upstream: tuple[str, ...]

    @property
    def environment(self) -> tuple[tuple[str, EnvValue], ...]:
        """What the container gets: the config's values, esteira's own winning on a shared name (ENV)."""
        merged: dict[str, EnvValue] = {**dict(self.literal_env), **dict(self.platform_env)}
        return tuple(merged.items())

    def env(self, resolve: Resolver, literal: Literal = as_is) -> dict[str, str]:
        return {k: resolve(v) if isinstance(v, RunValue) else literal(v) for k, v in self.environment}

    def argv(self, literal: Literal = as_is) -> list[str]:
        return [literal(arg) for arg in self.command]

    def ecs_run_task(self, placement: Placement, project: str, env: str, resolve: Resolver,
                     literal: Literal = as_is) -> dict[str, Any]:
        """The RunTask request of this step, camelCase as boto3 takes it.

        Airflow passes its parts to EcsRunTaskOperator; the ASL renderer PascalCases the same
        dict for `ecs:runTask.sync`. One source, so the two cannot drift.
        """
        return {
            "cluster": placement.cluster,
            "taskDefinition": placement.task_definition,
            # the project's (spot) capacity provider; never a launchType, which would bypass it
            "capacityProviderStrategy": [{"capacityProvider": placement.capacity_provider, "weight": 1, "base": 0}],
            "networkConfiguration": {"awsvpcConfiguration": {
                "subnets": list(placement.subnets),
                "securityGroups": list(placement.security_groups),
                "assignPublicIp": "ENABLED" if placement.assign_public_ip else "DISABLED",
            }},
            "overrides": self.ecs_overrides(placement.container_name, resolve, literal),
            "propagateTags": "TASK_DEFINITION",
            "tags": [{"key": k, "value": v} for k, v in self.tags(project, env).items()],
        }

    def tags(self, project: str, env: str) -> dict[str, str]:
        return {"esteira:project": project, "esteira:step": self.step_id, "esteira:env": env}

    def ecs_overrides(self, container_name: str, resolve: Resolver, literal: Literal = as_is) -> dict[str, Any]:
        """RunTask `overrides`, camelCase as boto3 and the Airflow operator take them."""
        return {
            "containerOverrides": [{
                "name": container_name,
                "command": self.argv(literal),
                "environment": [{"name": k, "value": v} for k, v in self.env(resolve, literal).items()],
                "cpu": self.cpu_units,
                "memory": self.memory_mib,
            }],
            "cpu": str(self.cpu_units),
            "memory": str(self.memory_mib),
        }


@dataclass(frozen=True)
class SchedulePlan:
    """The schedule and who runs it: decided here once, rendered by the DAG and the schedules."""

    cron: str  # the 5-field Unix cron (Airflow's timetable)
    aws_expression: str  # the same instants as EventBridge's cron(...)
    timezone: str
    start_date: date | None
    start: datetime | None  # midnight of start_date in the zone, as a UTC instant
    catchup: bool
    owner: str  # "step_functions" or "airflow": the orchestrator whose schedule fires in production
    in_airflow: bool  # does the DAG carry the cron timetable (the config's schedule.enabled)
    aws_enabled: bool  # is the EventBridge schedule ENABLED in this environment
    # does Airflow's scheduler fire the cron? If not, the DAG takes manual runs and backfills only
    airflow_schedules: bool
    max_active_runs: int


@dataclass(frozen=True)
class TriggerPlan:
    """S3 objects that start a run (esteira.s3_trigger), and who runs it: the orchestrator that owns
    production (batch.orchestrator), so that each object starts one run, never one on each side."""

    bucket: str  # this environment's (`{env}` filled in)
    prefix: str
    suffix: str
    event_pattern: dict[str, Any]
    owner: str  # "step_functions": the rule starts the state machine; "airflow": it feeds the SQS queue
    # is the rule ENABLED here: as the schedules (environments.yaml's schedules_enabled, batch.enabled)
    aws_enabled: bool
    queue_url: str | None  # the SQS queue Airflow's AssetWatcher reads (AWS targets, owner airflow)


@dataclass(frozen=True)
class NotificationPlan:
    on_success: tuple[str, ...]
    on_failure: tuple[str, ...]
    topic_arn: str | None  # None on the local target: a log line instead of SNS


@dataclass(frozen=True)
class ComputePlan:
    provider: str  # "ec2" or "fargate"
    spot: bool
    ec2_type: str | None
    min_quantity: int | None
    max_quantity: int | None
    log_retention_days: int


@dataclass(frozen=True)
class Plan:
    project: str
    version: str
    description: str
    tech_owner: str
    business_owner: str
    source: Path  # config.yaml
    target: Target
    names: ProjectNames
    placement: Placement | None  # None on the local target
    steps: tuple[StepPlan, ...]  # in the config's order
    graph: Graph
    run_timeout_seconds: int
    schedule: SchedulePlan
    notifications: NotificationPlan
    compute: ComputePlan
    trigger: TriggerPlan | None  # None: no trigger block, only the schedule and manual runs start runs
    secrets: tuple[tuple[str, str], ...]  # (env var, "ssm:..." | "secretsmanager:...")
    # what every step gets that is not the run's own: the task definition's environment
    platform_env: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]  # project, version, orchestrator, env: DAG tags

    @property
    def directory(self) -> Path:
        return self.source.parent

    @property
    def aws(self) -> AwsEnvironment | None:
        return self.target.aws

    def step(self, step_id: str) -> StepPlan:
        return next(s for s in self.steps if s.step_id == step_id)


def capacity_provider(project: Project) -> str:
    """The project's own (spot or on-demand) EC2 capacity provider, or AWS's Fargate one."""
    compute = project.config.infra.compute
    if compute.provider == "fargate":
        return "FARGATE_SPOT" if compute.spot else "FARGATE"
    return project.names.capacity_provider


def start_instant(day: date, timezone: str) -> datetime:
    """Midnight of `day` in the zone, as a UTC instant: where both orchestrators' schedules begin."""
    return datetime.combine(day, time(), ZoneInfo(timezone)).astimezone(UTC)


def build_plan(project: Project, target: Target) -> Plan:
    """The Plan of one project on one target; refuses what the target would reject (ConfigError)."""
    cfg = project.config
    names = project.names
    literal_platform: dict[str, str] = {
        "ENV": target.env,
        "MLFLOW_TRACKING_URI": target.mlflow_tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": names.mlflow_experiment,
        "DATA_ROOT": target.data_root,
    }
    if target.mlflow_s3_endpoint_url:
        literal_platform["MLFLOW_S3_ENDPOINT_URL"] = target.mlflow_s3_endpoint_url
    # the order every earlier export wrote: the run's identity, then the optional S3 endpoint
    platform: dict[str, EnvValue] = {k: v for k, v in literal_platform.items() if k != "MLFLOW_S3_ENDPOINT_URL"}
    platform |= {"RUN_DATE": RunValue.RUN_DATE, "RUN_ID": RunValue.RUN_ID}
    if cfg.trigger is not None:  # only a triggered project's steps get them: other exports stay as they were
        platform |= {"TRIGGER_BUCKET": RunValue.TRIGGER_BUCKET, "TRIGGER_KEY": RunValue.TRIGGER_KEY}
    if target.mlflow_s3_endpoint_url:
        platform["MLFLOW_S3_ENDPOINT_URL"] = target.mlflow_s3_endpoint_url
    placement = None
    aws = target.aws
    if aws is not None:
        placement = Placement(
            region=aws.region, aws_conn_id=aws.aws_conn_id, cluster=names.cluster,
            task_definition=names.task_definition_family, container_name=names.container_name,
            capacity_provider=capacity_provider(project), subnets=aws.network.subnets,
            security_groups=aws.network.security_groups,
            assign_public_ip=aws.network.assign_public_ip, log_group=names.log_group,
            log_stream_prefix=names.log_stream_prefix, deferrable=aws.deferrable_steps,
        )
    specs = []
    problems = []
    for index, step in enumerate(cfg.batch.pipeline.steps):
        plan = StepPlan(
            step_id=step.id,
            display_name=step.name,
            command=step.command,
            literal_env=tuple({**cfg.runtime.env_vars, **step.env_vars}.items()),
            platform_env=tuple(platform.items()),
            cpu_units=math.ceil(step.resources.cpu * 1024),
            memory_mib=math.ceil(step.resources.memory_gb * 1024),
            retries=project.retries(step),
            retry_delay_seconds=cfg.schedule.retry_delay_seconds,
            infra_retries=project.infra_retries(step),
            infra_retry_delay_seconds=cfg.schedule.infra_retry_delay_seconds,
            timeout_seconds=project.timeout_seconds(step),
            upstream=project.graph.upstream(step.id),
        )
        size = len(json.dumps(plan.ecs_overrides(names.container_name, _longest)))
        if size > ECS_OVERRIDES_LIMIT:
            path: tuple[str | int, ...] = ("batch", "pipeline", "steps", index)
            problems.append(Problem(
                f"the ECS overrides of this step (command + environment) take {size} characters; "
                f"ECS accepts at most {ECS_OVERRIDES_LIMIT}: shorten env_vars or the command",
                path, project.line_for(path)))
        specs.append(plan)
    sched = cfg.schedule
    if aws is not None and sched.catchup and sched.enabled and cfg.batch.orchestrator == "step_functions":
        path = ("schedule", "catchup")
        since = f" --from {sched.start_date.isoformat()}" if sched.start_date else " --from START"
        problems.append(Problem(
            "catchup: true has no equivalent on EventBridge Scheduler, which fires this project's "
            "schedule on AWS (it never runs past instants): set catchup: false, and fill the past "
            f"with `esteira backfill {cfg.project_name}{since} --to TODAY --env {target.env}`",
            path, project.line_for(path)))
    trigger = None
    if cfg.trigger is not None:
        s3 = cfg.trigger.s3
        bucket = bucket_for(s3.bucket, target.env)
        loop = _trigger_loop(bucket, s3.prefix, target.data_root, cfg.project_name)
        if loop:
            path = ("trigger", "s3", "prefix")
            problems.append(Problem(loop, path, project.line_for(path)))
        trigger = TriggerPlan(
            bucket=bucket, prefix=s3.prefix, suffix=s3.suffix,
            event_pattern=event_pattern(bucket, s3.prefix, s3.suffix),
            owner=cfg.batch.orchestrator,
            aws_enabled=bool(cfg.batch.enabled and aws is not None and aws.schedules_enabled),
            queue_url=(names.trigger_queue_url(aws.region, aws.account_id)
                       if aws is not None and cfg.batch.orchestrator == "airflow" else None))
    if problems:
        raise ConfigError(project.source, problems)
    owner = cfg.batch.orchestrator
    schedule = SchedulePlan(
        cron=sched.cron, aws_expression=to_aws_cron(sched.cron), timezone=sched.timezone,
        start_date=sched.start_date,
        start=start_instant(sched.start_date, sched.timezone) if sched.start_date else None,
        # `batch.enabled: false` switches the pipeline off: no schedule fires on either side
        catchup=sched.catchup, owner=owner, in_airflow=sched.enabled and cfg.batch.enabled,
        aws_enabled=bool(sched.enabled and cfg.batch.enabled and owner == "step_functions"
                         and aws is not None and aws.schedules_enabled),
        # On AWS, Step Functions owns the production schedule unless the config says airflow: the
        # DAG then schedules nothing (manual runs and backfills only), so nothing runs twice.
        airflow_schedules=(owner == "airflow" if aws is not None else target.local_schedules),
        max_active_runs=sched.max_active_runs,
    )
    notify = cfg.notifications
    compute = cfg.infra.compute
    return Plan(
        project=cfg.project_name, version=cfg.version, description=cfg.description,
        tech_owner=str(cfg.owners.tech_owner), business_owner=str(cfg.owners.business_owner),
        source=project.source, target=target, names=names, placement=placement, steps=tuple(specs),
        graph=project.graph, run_timeout_seconds=sched.timeout_seconds, schedule=schedule,
        notifications=NotificationPlan(
            on_success=tuple(str(a) for a in notify.on_success),
            on_failure=tuple(str(a) for a in notify.on_failure),
            topic_arn=names.sns_topic_arn(aws.region, aws.account_id) if aws is not None else None),
        compute=ComputePlan(provider=compute.provider, spot=compute.spot, ec2_type=compute.ec2_type,
                            min_quantity=compute.min_quantity, max_quantity=compute.max_quantity,
                            log_retention_days=cfg.infra.log_retention_days),
        trigger=trigger,
        secrets=tuple(sorted(cfg.runtime.secrets.items())),
        platform_env=tuple(literal_platform.items()),
        labels=(("project", cfg.project_name), ("version", cfg.version), ("orchestrator", owner),
                ("env", target.env)),
    )


def _longest(value: RunValue) -> str:
    return _LONGEST[value]


def _trigger_loop(bucket: str, prefix: str, data_root: str, project: str) -> str | None:
    """Why the pipeline would trigger itself (it writes its data where its trigger watches), or None."""
    if not data_root.startswith("s3://"):
        return None
    data_bucket, _, root = data_root.removeprefix("s3://").partition("/")
    data_prefix = f"{root.strip('/')}/{project}/".lstrip("/")
    if data_bucket != bucket or not (data_prefix.startswith(prefix) or prefix.startswith(data_prefix)):
        return None
    return (f"the pipeline writes its data under s3://{bucket}/{data_prefix} (data_root in environments.yaml), "
            f"which the trigger watches (prefix {prefix!r}): every run would start another; watch another "
            "prefix or bucket")
