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
from esteira.graph import steps_in_order, structure
from esteira.s3_trigger import INPUT_TRIGGER_BUCKET, INPUT_TRIGGER_KEY

if TYPE_CHECKING:  # the planner is imported only by a compile, never by a parse the cache serves
    from esteira.plan import Plan, StepPlan

DagSpec = dict[str, Any]  # JSON: str keys; strings, numbers, booleans, null, lists and dicts only

# Bump when the spec's shape or meaning changes: a cached spec of another version is never read.
SPEC_VERSION = 4  # 2: an ECS task's `deferrable`; 3: S3 triggers; 4: notify's step order


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
            # the order a failure message lists failed steps in: the state machine's (esteira.asl)
            "order": steps_in_order(structure(plan.graph)),
        },
        "tasks": [_task(plan, step) for step in plan.steps],
        "edges": [list(edge) for edge in plan.graph.edges],
        **_trigger(plan),
    }


def _trigger(plan: Plan) -> dict[str, Any]:
    """A triggered project's DAG takes the object as params (a manual run can name one; `esteira
    trigger` and the dispatcher pass them as conf), and on AWS, when Airflow owns production, the
    dispatcher DAG that turns the queue's events into runs (esteira.airflow.s3_dispatch)."""
    trigger = plan.trigger
    if trigger is None:
        return {}
    where = f"s3://{trigger.bucket}/{trigger.prefix}*{trigger.suffix}"
    spec: dict[str, Any] = {"params": {
        INPUT_TRIGGER_BUCKET: {"default": "", "description": f"the bucket of the object that started the run "
                                                            f"({trigger.bucket}); empty for other runs"},
        INPUT_TRIGGER_KEY: {"default": "", "description": f"the key of the object that started the run "
                                                         f"({where}); empty for other runs"},
    }}
    placement = plan.placement
    if trigger.queue_url is not None and placement is not None:
        dag_id = plan.names.trigger_dag_id
        spec["dispatch"] = {
            "dag_id": dag_id,
            "trigger_dag_id": plan.names.dag_id,
            "asset_name": f"esteira.{plan.project}.s3",
            "asset_uri": f"s3://{trigger.bucket}/{trigger.prefix}",
            "queue_url": trigger.queue_url,
            "aws_conn_id": placement.aws_conn_id,
            "region": placement.region,
            "owner": plan.tech_owner,
            "tags": ["esteira", f"project:{plan.project}", "esteira:s3-trigger"],
            "description": _one_line(f"{plan.project}: one run per object created in {where}"),
            "doc_md": f"Starts one run of `{plan.names.dag_id}` per object created in `{where}`: the events "
                      f"EventBridge puts on the SQS queue `{trigger.queue_url}`, which an AssetWatcher reads. "
                      "Generated by esteira; see the README's \"Event triggers\".",
        }
        # the dispatcher's runs of a paused DAG would wait, silently: the objects must start their runs
        spec["paused_upon_creation"] = False
    return spec


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
        "awslogs_stream_prefix": placement.task_log_prefix,
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
    if plan.trigger is not None:
        trigger = plan.trigger
        when += (f" · **trigger** objects created in `s3://{trigger.bucket}/{trigger.prefix}*{trigger.suffix}` "
                 "(TRIGGER_BUCKET/TRIGGER_KEY; params of a manual run)")
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
