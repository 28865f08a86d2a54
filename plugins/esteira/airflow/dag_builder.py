"""Project + run spec -> an Airflow DAG. Only the operator differs between the backends.

ecs: EcsRunTaskOperator on the project's capacity provider (never the operator's default
launch_type="EC2", which would bypass the spot capacity provider). local: the same argv and
environment as a process on this machine.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum

from esteira.airflow.compat import DAG, BaseOperator, CronTriggerTimetable, EcsRunTaskOperator
from esteira.airflow.local_operator import LocalProcessOperator
from esteira.airflow.notify import callbacks
from esteira.airflow.templates import MACROS, jinja
from esteira.runspec import ProjectRunSpec, StepRunSpec

# Without a start_date in the config the DAG may run from here on (catchup is off then).
DEFAULT_START = datetime(2024, 1, 1)


def build_dag(spec: ProjectRunSpec) -> DAG:
    project = spec.project
    cfg = project.config
    sched = cfg.schedule
    start = sched.start_date or DEFAULT_START
    timetable = CronTriggerTimetable(sched.cron, timezone=sched.timezone) if sched.enabled else None
    owner = cfg.owners.tech_owner
    dag = DAG(
        dag_id=project.names.dag_id,
        description=_one_line(cfg.description),
        doc_md=_doc_md(spec),
        schedule=timetable,
        start_date=pendulum.datetime(start.year, start.month, start.day, tz=sched.timezone),
        catchup=sched.catchup,
        dagrun_timeout=timedelta(seconds=sched.timeout_seconds),
        tags=_tags(spec),
        owner_links={owner: f"mailto:{owner}"},
        user_defined_macros=MACROS,
        # In AWS, Step Functions owns the production schedule unless the config says airflow:
        # the DAG then starts paused (manual runs and backfills) so nothing runs twice.
        is_paused_upon_creation=(spec.placement is not None
                                 and cfg.batch.orchestrator != "airflow") or None,
        default_args={"owner": owner},
        **callbacks(spec),
    )
    tasks = {step.step_id: _task(spec, step, dag) for step in spec.steps}
    for upstream, downstream in project.graph.edges:
        tasks[upstream] >> tasks[downstream]
    return dag


def _task(spec: ProjectRunSpec, step: StepRunSpec, dag: DAG) -> BaseOperator:
    common: dict[str, Any] = {
        "task_id": step.step_id,
        "task_display_name": step.display_name,
        "retries": step.retries,
        "retry_delay": timedelta(seconds=step.retry_delay_seconds),
        "execution_timeout": timedelta(seconds=step.timeout_seconds),
        "dag": dag,
    }
    placement = spec.placement
    if placement is None:
        return LocalProcessOperator(command=step.command, env=step.env(jinja),
                                    cwd=str(spec.project.directory), **common)
    return EcsRunTaskOperator(
        cluster=placement.cluster,
        task_definition=placement.task_definition,
        overrides=step.ecs_overrides(placement.container_name, jinja),
        capacity_provider_strategy=[
            {"capacityProvider": placement.capacity_provider, "weight": 1, "base": 0}],
        network_configuration={"awsvpcConfiguration": {
            "subnets": list(placement.subnets),
            "securityGroups": list(placement.security_groups),
            "assignPublicIp": "ENABLED" if placement.assign_public_ip else "DISABLED",
        }},
        awslogs_group=placement.log_group,
        awslogs_region=placement.region,
        awslogs_stream_prefix=f"{placement.log_stream_prefix}/{placement.container_name}",
        container_name=placement.container_name,
        propagate_tags="TASK_DEFINITION",
        tags={"esteira:project": spec.project.name, "esteira:step": step.step_id,
              "esteira:env": spec.target.env},
        reattach=True,
        aws_conn_id=placement.aws_conn_id,
        region_name=placement.region,
        **common,
    )


def _tags(spec: ProjectRunSpec) -> list[str]:
    cfg = spec.project.config
    return ["esteira", f"project:{cfg.project_name}", f"version:{cfg.version}",
            f"orchestrator:{cfg.batch.orchestrator}", f"env:{spec.target.env}"]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def _doc_md(spec: ProjectRunSpec) -> str:
    cfg = spec.project.config
    sched = cfg.schedule
    when = (f"`{sched.cron}` ({sched.timezone})" if sched.enabled else "disabled (manual runs only)")
    rows = "\n".join(
        f"| `{s.step_id}` | {s.display_name} | `{' '.join(s.command)}` | "
        f"{', '.join(spec.project.graph.upstream(s.step_id)) or '-'} | "
        f"{s.cpu_units / 1024:g} vCPU, {s.memory_mib / 1024:g} GiB | {s.retries} | {s.timeout_seconds}s |"
        for s in spec.steps
    )
    return f"""{cfg.description}

**Project** `{cfg.project_name}` version `{cfg.version}` · **target** `{spec.target.env}` ·
**schedule** {when} · **owners** {cfg.owners.tech_owner} (tech), {cfg.owners.business_owner} (business)

| step | name | command | after | resources | retries | timeout |
|---|---|---|---|---|---|---|
{rows}

Generated by esteira from `{spec.project.source}`; edit that file, not this DAG.
"""
