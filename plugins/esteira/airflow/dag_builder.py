"""DagSpec -> an Airflow DAG. Only the operator differs between the backends.

ecs: EcsRunTaskOperator on the project's capacity provider (never the operator's default
launch_type="EC2", which would bypass the spot capacity provider). local: the same argv and
environment as a process on this machine. Every value was decided by esteira.airflow.dag_spec;
this module only calls Airflow's constructors, so a parse served from the compile cache imports
neither the config model nor the planner.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum

from esteira.airflow.compat import AIRFLOW_3, DAG, BaseOperator, Param
from esteira.airflow.ecs_operator import EcsRunTaskOperator
from esteira.airflow.local_operator import LocalProcessOperator
from esteira.airflow.notify import callbacks
from esteira.airflow.templates import MACROS
from esteira.airflow.timetable import EsteiraTimetable

# Without a start_date in the config the DAG may run from here on (catchup is off then).
DEFAULT_START = datetime(2024, 1, 1)
OPERATORS: dict[str, type[BaseOperator]] = {"ecs": EcsRunTaskOperator, "local": LocalProcessOperator}


def build_dags(spec: dict[str, Any]) -> list[DAG]:
    """The project's DAG and, for an S3 trigger Airflow owns on AWS, its dispatcher DAG (Airflow 3: an
    AssetWatcher on the trigger's SQS queue; Airflow 2 has no watchers, so there the DAG takes manual
    runs with the object as params)."""
    dags = [build_dag(spec)]
    if spec.get("dispatch") and AIRFLOW_3:
        from esteira.airflow.s3_dispatch import build_dispatch_dag

        dags.append(build_dispatch_dag(spec["dispatch"]))
    return dags


def build_dag(spec: dict[str, Any]) -> DAG:
    """The DAG of an esteira.airflow.dag_spec.DagSpec."""
    zone = spec["timezone"]
    start = (pendulum.instance(datetime.fromisoformat(spec["start_utc"])).in_timezone(zone) if spec["start_utc"] else
             pendulum.datetime(DEFAULT_START.year, DEFAULT_START.month, DEFAULT_START.day, tz=zone))
    timetable = spec["timetable"]
    owner = spec["owner"]
    dag = DAG(
        dag_id=spec["dag_id"],
        description=spec["description"],
        doc_md=spec["doc_md"],
        schedule=EsteiraTimetable(timetable["cron"], zone, scheduled=timetable["scheduled"]) if timetable else None,
        start_date=start,
        catchup=spec["catchup"],
        dagrun_timeout=timedelta(seconds=spec["dagrun_timeout_seconds"]),
        tags=spec["tags"],
        owner_links={owner: f"mailto:{owner}"},
        user_defined_macros=MACROS,
        max_active_runs=spec["max_active_runs"],
        is_paused_upon_creation=spec["paused_upon_creation"],
        default_args={"owner": owner},
        params=_params(spec.get("params")),
        **callbacks(spec["notify"]),
    )
    tasks = {task["task_id"]: _task(task, dag) for task in spec["tasks"]}
    for upstream, downstream in spec["edges"]:
        tasks[upstream] >> tasks[downstream]
    return dag


def _params(params: dict[str, Any] | None) -> dict[str, Param] | None:
    """A triggered project's params (the object of a manual run); None for any other, as before."""
    if not params:
        return None
    return {name: Param(param["default"], type="string", description=param["description"])
            for name, param in params.items()}


def _task(task: dict[str, Any], dag: DAG) -> BaseOperator:
    return OPERATORS[task["operator"]](
        task_id=task["task_id"],
        task_display_name=task["task_display_name"],
        retries=task["retries"],
        retry_delay=timedelta(seconds=task["retry_delay_seconds"]),
        execution_timeout=timedelta(seconds=task["execution_timeout_seconds"]),
        dag=dag,
        **task["args"],
    )
