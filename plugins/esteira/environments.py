"""Per-environment platform settings (projects/environments.yaml): the only home of AWS values.

No account id, subnet or role is written in Python; renderers take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from esteira.model import Strict
from esteira.settings import ENV_NAMES as ENV_NAMES  # named here too: the environments file's keys
from esteira.validation import validate_document
from esteira.yaml_source import load_yaml

EnvName = Literal["dev", "prd"]
IamRoleArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$")]


class Network(Strict):
    subnets: Annotated[tuple[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")], ...],
                       Field(min_length=1, max_length=16)]
    security_groups: Annotated[tuple[Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")], ...],
                               Field(min_length=1, max_length=5)]
    assign_public_ip: bool = False


class Roles(Strict):
    task_execution: IamRoleArn
    task: IamRoleArn
    step_functions: IamRoleArn
    scheduler: IamRoleArn


class Mlflow(Strict):
    tracking_uri: Annotated[str, Field(min_length=1)]
    s3_endpoint_url: str | None = None


class AwsEnvironment(Strict):
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    aws_conn_id: str = "aws_default"
    network: Network
    roles: Roles
    ecr_repository: Annotated[str, Field(pattern=r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9._/-]+$")]
    mlflow: Mlflow
    data_root: Annotated[str, Field(pattern=r"^s3://[a-z0-9.-]{3,63}(/.*)?$")]
    # whether this environment's EventBridge schedules fire (the seed: only prd runs on a schedule;
    # dev gets the same schedules DISABLED and executions started by hand)
    schedules_enabled: bool = False
    # Airflow only: the ECS steps wait in the triggerer, not in a worker slot (esteira.airflow.ecs_trigger),
    # for deployments with few worker slots (MWAA) and long steps; the budgets and timeouts are the same
    deferrable_steps: bool = False


class LocalEnvironment(Strict):
    # relative to the folder of environments.yaml; MLflow's sqlite file and the data live here
    home: str = "../.esteira"
    # false: the local DAGs schedule nothing (as on AWS when Step Functions owns the schedule) and
    # take manual runs and backfills only
    schedules_enabled: bool = True


class EnvironmentsFile(Strict):
    local: LocalEnvironment = LocalEnvironment()
    dev: AwsEnvironment
    prd: AwsEnvironment


@dataclass(frozen=True)
class LocalSettings:
    """What a step run on this machine gets instead of AWS endpoints."""

    home: Path
    schedules_enabled: bool = True

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def data_root(self) -> str:
        return str(self.home / "data")


@dataclass(frozen=True)
class Environments:
    file: Path
    settings: EnvironmentsFile

    def aws(self, env: str) -> AwsEnvironment:
        if env not in ENV_NAMES:
            raise ValueError(f"unknown environment {env!r}; expected one of {', '.join(ENV_NAMES)}")
        aws: AwsEnvironment = getattr(self.settings, env)
        return aws

    @property
    def local(self) -> LocalSettings:
        local = self.settings.local
        return LocalSettings((self.file.parent / local.home).resolve(), local.schedules_enabled)


def load_environments(file: Path, raw: bytes | None = None) -> Environments:
    """Load and validate environments.yaml (`raw`: its bytes, already read); ConfigError names the
    file, line and field."""
    doc = load_yaml(file, raw)
    return Environments(file=file, settings=validate_document(EnvironmentsFile, doc))
