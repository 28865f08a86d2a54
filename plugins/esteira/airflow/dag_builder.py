"""Plan -> an Airflow DAG. Only the operator differs between the backends.

ecs: EcsRunTaskOperator on the project's capacity provider (never the operator's default
launch_type="EC2", which would bypass the spot capacity provider). local: the same argv and
environment as a process on this machine.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum

from esteira.airflow.compat import DAG, BaseOperator
from esteira.airflow.ecs_operator import EcsRunTaskOperator, try_timeout_seconds
from esteira.airflow.local_operator import LocalProcessOperator
from esteira.airflow.notify import callbacks
from esteira.airflow.templates import MACROS, jinja, literal
from esteira.airflow.timetable import EsteiraTimetable
from esteira.plan import Plan, StepPlan

# Without a start_date in the config the DAG may run from here on (catchup is off then).
DEFAULT_START = datetime(2024, 1, 1)


def build_dag(plan: Plan) -> DAG:
    sched = plan.schedule
    # the DAG's zone is its start date's: the schedule's zone, at the instant the Plan decided
    start = (pendulum.instance(sched.start).in_timezone(sched.timezone) if sched.start else
             pendulum.datetime(DEFAULT_START.year, DEFAULT_START.month, DEFAULT_START.day, tz=sched.timezone))
    timetable = (EsteiraTimetable(sched.cron, sched.timezone, scheduled=sched.airflow_schedules)
                 if sched.in_airflow else None)
    owner = plan.tech_owner
    dag = DAG(
        dag_id=plan.names.dag_id,
        description=_one_line(plan.description),
        doc_md=_doc_md(plan),
        schedule=timetable,
        start_date=start,
        catchup=sched.catchup,
        dagrun_timeout=timedelta(seconds=plan.run_timeout_seconds),
        tags=["esteira", *(f"{key}:{value}" for key, value in plan.labels)],
        owner_links={owner: f"mailto:{owner}"},
        user_defined_macros=MACROS,
        max_active_runs=sched.max_active_runs,
        # a DAG that schedules nothing is safe to leave unpaused, and must be: Airflow 3 does not
        # start manual or backfill runs of a paused DAG; a scheduling DAG follows Airflow's setting
        is_paused_upon_creation=False if sched.in_airflow and not sched.airflow_schedules else None,
        default_args={"owner": owner},
        **callbacks(plan),
    )
    tasks = {step.step_id: _task(plan, step, dag) for step in plan.steps}
    for upstream, downstream in plan.graph.edges:
        tasks[upstream] >> tasks[downstream]
    return dag


def _task(plan: Plan, step: StepPlan, dag: DAG) -> BaseOperator:
    common: dict[str, Any] = {
        "task_id": step.step_id,
        "task_display_name": step.display_name,
        "retries": step.retries,
        "retry_delay": timedelta(seconds=step.retry_delay_seconds),
        "execution_timeout": timedelta(seconds=step.timeout_seconds),
        "dag": dag,
    }
    placement = plan.placement
    if placement is None:
        # only `env` is a template field of the local operator; the command is passed as is
        return LocalProcessOperator(command=step.command, env=step.env(jinja, literal),
                                    cwd=str(plan.directory), **common)
    request = step.ecs_run_task(placement, plan.project, plan.target.env, jinja, literal)
    # timeout_seconds bounds each ECS task, as on Step Functions; execution_timeout, the whole try
    # (up to 1 + infra_retries tasks and the waits between them): esteira.airflow.ecs_operator
    common["execution_timeout"] = timedelta(seconds=try_timeout_seconds(
        step.timeout_seconds, step.infra_retries, step.infra_retry_delay_seconds))
    return EcsRunTaskOperator(
        task_timeout_seconds=step.timeout_seconds,
        infra_retries=step.infra_retries,
        infra_retry_delay_seconds=step.infra_retry_delay_seconds,
        cluster=request["cluster"],
        task_definition=request["taskDefinition"],
        overrides=request["overrides"],
        capacity_provider_strategy=request["capacityProviderStrategy"],
        network_configuration=request["networkConfiguration"],
        propagate_tags=request["propagateTags"],
        tags={t["key"]: t["value"] for t in request["tags"]},
        awslogs_group=placement.log_group,
        awslogs_region=placement.region,
        awslogs_stream_prefix=f"{placement.log_stream_prefix}/{placement.container_name}",
        container_name=placement.container_name,
        reattach=True,
        aws_conn_id=placement.aws_conn_id,
        region_name=placement.region,
        **common,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def _doc_md(plan: Plan) -> str:
    sched = plan.schedule
    when = (f"`{sched.cron}` ({sched.timezone})" if sched.in_airflow else "disabled (manual runs only)")
    if sched.in_airflow and not sched.airflow_schedules:
        who = "fired by Step Functions" if plan.target.aws is not None else "off on this machine"
        when += f", {who}: here manual runs and backfills only"
    rows = "\n".join(
        f"| `{s.step_id}` | {s.display_name} | `{' '.join(s.command)}` | "
        f"{', '.join(s.upstream) or '-'} | "
        f"{s.cpu_units / 1024:g} vCPU, {s.memory_mib / 1024:g} GiB | {s.retries} | {s.timeout_seconds}s |"
        for s in plan.steps
    )
    return f"""{plan.description}

**Project** `{plan.project}` version `{plan.version}` · **target** `{plan.target.env}` ·
**schedule** {when} · **owners** {plan.tech_owner} (tech), {plan.business_owner} (business)

| step | name | command | after | resources | retries | timeout |
|---|---|---|---|---|---|---|
{rows}

Generated by esteira from `{plan.source}`; edit that file, not this DAG.
"""
