"""How one step runs, said once and neutrally; each orchestrator only renders it.

A StepRunSpec holds the command list, environment, cpu, memory, retries and timeout. The
run's identity (RUN_DATE, RUN_ID) is left as a RunValue placeholder because each
orchestrator knows it differently (Airflow's dag run, the scheduler's input in Step
Functions); renderers substitute it. Parity between Airflow and ASL follows from this.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from esteira.config import Project
from esteira.environments import AwsEnvironment, Environments
from esteira.errors import ConfigError, Problem

ECS_OVERRIDES_LIMIT = 8192  # characters, RunTask's containerOverrides cap
_LONGEST_RUN_ID = "x" * 250  # Airflow's run_id limit; longer than a Step Functions execution name
_LONGEST_RUN_DATE = "2026-11-24T03:00:00Z"


class RunValue(enum.Enum):
    """Values known only when a run starts."""

    RUN_DATE = "RUN_DATE"  # the scheduled/logical instant, ISO 8601 UTC, e.g. 2026-11-24T03:00:00Z
    RUN_ID = "RUN_ID"  # the orchestrator's id of this run


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

    @classmethod
    def local(cls, environments: Environments, mlflow_tracking_uri: str | None = None) -> Target:
        """This machine; MLflow is the sqlite file under local.home unless a server is given."""
        local = environments.local
        return cls("local", mlflow_tracking_uri or local.mlflow_tracking_uri, None, local.data_root, None)

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


@dataclass(frozen=True)
class StepRunSpec:
    step_id: str
    display_name: str
    command: tuple[str, ...]
    environment: tuple[tuple[str, EnvValue], ...]
    cpu_units: int
    memory_mib: int
    retries: int
    retry_delay_seconds: int
    timeout_seconds: int

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
class ProjectRunSpec:
    project: Project
    target: Target
    placement: Placement | None
    steps: tuple[StepRunSpec, ...]  # in the config's order

    def step(self, step_id: str) -> StepRunSpec:
        return next(s for s in self.steps if s.step_id == step_id)


def capacity_provider(project: Project) -> str:
    """The project's own (spot or on-demand) EC2 capacity provider, or AWS's Fargate one."""
    compute = project.config.infra.compute
    if compute.provider == "fargate":
        return "FARGATE_SPOT" if compute.spot else "FARGATE"
    return project.names.capacity_provider


def build_run_spec(project: Project, target: Target) -> ProjectRunSpec:
    """The run spec of every step for one target; refuses overrides ECS would reject."""
    cfg = project.config
    names = project.names
    platform: dict[str, EnvValue] = {
        "ENV": target.env,
        "MLFLOW_TRACKING_URI": target.mlflow_tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": names.mlflow_experiment,
        "DATA_ROOT": target.data_root,
        "RUN_DATE": RunValue.RUN_DATE,
        "RUN_ID": RunValue.RUN_ID,
    }
    if target.mlflow_s3_endpoint_url:
        platform["MLFLOW_S3_ENDPOINT_URL"] = target.mlflow_s3_endpoint_url
    placement = None
    if target.aws is not None:
        aws = target.aws
        placement = Placement(
            region=aws.region, aws_conn_id=aws.aws_conn_id, cluster=names.cluster,
            task_definition=names.task_definition_family, container_name=names.container_name,
            capacity_provider=capacity_provider(project), subnets=aws.network.subnets,
            security_groups=aws.network.security_groups,
            assign_public_ip=aws.network.assign_public_ip, log_group=names.log_group,
            log_stream_prefix=names.log_stream_prefix,
        )
    specs = []
    problems = []
    for index, step in enumerate(cfg.batch.pipeline.steps):
        env = {**cfg.runtime.env_vars, **step.env_vars, **platform}
        spec = StepRunSpec(
            step_id=step.id,
            display_name=step.name,
            command=step.command,
            environment=tuple(env.items()),
            cpu_units=math.ceil(step.resources.cpu * 1024),
            memory_mib=math.ceil(step.resources.memory_gb * 1024),
            retries=project.retries(step),
            retry_delay_seconds=cfg.schedule.retry_delay_seconds,
            timeout_seconds=project.timeout_seconds(step),
        )
        size = len(json.dumps(spec.ecs_overrides(names.container_name, _longest)))
        if size > ECS_OVERRIDES_LIMIT:
            path = ("batch", "pipeline", "steps", index)
            problems.append(Problem(
                f"the ECS overrides of this step (command + environment) take {size} characters; "
                f"ECS accepts at most {ECS_OVERRIDES_LIMIT}: shorten env_vars or the command",
                path, project.line_for(path)))
        specs.append(spec)
    if problems:
        raise ConfigError(project.source, problems)
    return ProjectRunSpec(project, target, placement, tuple(specs))


def _longest(value: RunValue) -> str:
    return _LONGEST_RUN_DATE if value is RunValue.RUN_DATE else _LONGEST_RUN_ID
