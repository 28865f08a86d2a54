"""Plan -> DagSpec: every argument of the DAG's and its operators' constructors, as plain JSON data.

The spec is what the compile cache stores (esteira.compile_cache): on a DAG-processor parse whose
config did not change, the DAG is built from it without reading YAML, validating, planning, or even
importing the config model. So everything the DAG depends on is decided here, from the Plan, and
esteira.airflow.dag_builder only hands the values to Airflow's constructors. This module imports
no Airflow: the DAG's Jinja expressions are plain strings until an operator renders them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esteira import notifications
from esteira.airflow.templates import jinja, literal
from esteira.ecs_failures import try_timeout_seconds

if TYPE_CHECKING:  # the planner is imported only by a compile, never by a parse the cache serves
    from esteira.plan import Plan, StepPlan

DagSpec = dict[str, Any]  # JSON: str keys; strings, numbers, booleans, null, lists and dicts only

# Bump when the spec's shape or meaning changes: a cached spec of another version is never read.
SPEC_VERSION = 2  # 2: an ECS task's `deferrable`


def dag_spec(plan: Plan) -> DagSpec:
    sched = plan.schedule
    notify = plan.notifications
    placement = plan.placement
    return {
        "dag_id": plan.names.dag_id,
        "description": _one_line(plan.description),
        "doc_md": _doc_md(plan),
        # the DAG's zone is its start date's: the schedule's zone, at the instant the Plan decided
        "timezone": sched.timezone,
        "start_utc": sched.start.isoformat() if sched.start else None,
        "timetable": ({"cron": sched.cron, "scheduled": sched.airflow_schedules} if sched.in_airflow else None),
        "catchup": sched.catchup,
        "dagrun_timeout_seconds": plan.run_timeout_seconds,
        "tags": ["esteira", *(f"{key}:{value}" for key, value in plan.labels)],
        "owner": plan.tech_owner,
        "max_active_runs": sched.max_active_runs,
        # a DAG that schedules nothing is safe to leave unpaused, and must be: Airflow 3 does not
        # start manual or backfill runs of a paused DAG; a scheduling DAG follows Airflow's setting
        "paused_upon_creation": False if sched.in_airflow and not sched.airflow_schedules else None,
        "notify": {
            "project": plan.project,
            "env": plan.target.env,
            "topic_arn": notify.topic_arn,
            "aws_conn_id": placement.aws_conn_id if placement else None,
            "region": placement.region if placement else None,
            "statuses": ([notifications.SUCCEEDED] if notify.on_success else [])
            + ([notifications.FAILED] if notify.on_failure else []),
        },
        "tasks": [_task(plan, step) for step in plan.steps],
        "edges": [list(edge) for edge in plan.graph.edges],
    }


def _task(plan: Plan, step: StepPlan) -> dict[str, Any]:
    common: dict[str, Any] = {
        "task_id": step.step_id,
        "task_display_name": step.display_name,
        "retries": step.retries,
        "retry_delay_seconds": step.retry_delay_seconds,
        "execution_timeout_seconds": step.timeout_seconds,
    }
    placement = plan.placement
    if placement is None:
        # only `env` is a template field of the local operator; the command is passed as is
        return {**common, "operator": "local", "args": {
            "command": list(step.command), "env": step.env(jinja, literal), "cwd": str(plan.directory)}}
    request = step.ecs_run_task(placement, plan.project, plan.target.env, jinja, literal)
    # timeout_seconds bounds each ECS task, as on Step Functions; execution_timeout, the whole try
    # (up to 1 + infra_retries tasks and the waits between them): esteira.airflow.ecs_operator
    common["execution_timeout_seconds"] = try_timeout_seconds(
        step.timeout_seconds, step.infra_retries, step.infra_retry_delay_seconds)
    return {**common, "operator": "ecs", "args": {
        "task_timeout_seconds": step.timeout_seconds,
        "infra_retries": step.infra_retries,
        "infra_retry_delay_seconds": step.infra_retry_delay_seconds,
        "cluster": request["cluster"],
        "task_definition": request["taskDefinition"],
        "overrides": request["overrides"],
        "capacity_provider_strategy": request["capacityProviderStrategy"],
        "network_configuration": request["networkConfiguration"],
        "propagate_tags": request["propagateTags"],
        "tags": {t["key"]: t["value"] for t in request["tags"]},
        "awslogs_group": placement.log_group,
        "awslogs_region": placement.region,
        "awslogs_stream_prefix": f"{placement.log_stream_prefix}/{placement.container_name}",
        "container_name": placement.container_name,
        "reattach": True,
        "deferrable": placement.deferrable,  # wait in the triggerer (environments.yaml's deferrable_steps)
        "aws_conn_id": placement.aws_conn_id,
        "region_name": placement.region,
    }}


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
