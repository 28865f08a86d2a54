"""Airflow 3: the SQS queue of a project's S3 trigger, watched by an AssetWatcher, starts one run per object.

The stack's EventBridge rule sends each S3 "Object Created" event to the project's queue (an
Airflow-owned project: esteira.cloudformation). The asset `esteira.<project>.s3` has an
AssetWatcher whose trigger is the amazon provider's `SqsSensorTrigger` (what common-messaging's
`MessageQueueTrigger(scheme="sqs")` builds), so the triggerer turns queue messages into asset events.

Airflow folds the asset events that arrive before the scheduler's next loop into one asset-triggered
run, so scheduling the project's DAG on the asset would give two objects landing together one run
between them. So a small DAG, `<project>__s3_trigger`, is scheduled on the asset instead: it reads
every message of every event its run consumed and starts one run of the project's DAG per S3 event,
as the rule starts one Step Functions execution per event, with the same values
(esteira.s3_trigger.run_values_from_event): run id = the event's id (a message delivered twice starts
nothing twice: `skip_when_already_exists`), run_after = the event's time, which is RUN_DATE (the run
has no logical date: two objects may land in the same second), and conf trigger_bucket/trigger_key.
The project's DAG keeps its own schedule, cron or none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger
from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Asset, AssetWatcher

from esteira.s3_trigger import INPUT_TRIGGER_BUCKET, INPUT_TRIGGER_KEY, run_values_from_event

# the queue is read with long polls (20 s, SQS's longest: cheap and prompt), up to 10 messages a call
WAIT_TIME_SECONDS, MAX_MESSAGES, WAITER_DELAY_SECONDS = 20, 10, 5


def watcher_trigger(dispatch: Mapping[str, Any]) -> SqsSensorTrigger:
    return SqsSensorTrigger(sqs_queue=dispatch["queue_url"], aws_conn_id=dispatch["aws_conn_id"],
                            region_name=dispatch["region"], max_messages=MAX_MESSAGES,
                            wait_time_seconds=WAIT_TIME_SECONDS, waiter_delay=WAITER_DELAY_SECONDS)


def runs_from_events(events: Iterable[Any]) -> list[dict[str, Any]]:
    """TriggerDagRunOperator's arguments for each S3 event in these asset events (their extra is
    {"from_trigger": true, "payload": the SqsSensorTrigger's event}), once per event id."""
    runs: dict[str, dict[str, Any]] = {}
    for event in events:
        payload = (getattr(event, "extra", None) or {}).get("payload") or {}
        for message in payload.get("message_batch") or []:
            values = run_values_from_event(json.loads(message["Body"]))
            runs.setdefault(values["run_id"], {
                "trigger_run_id": values["run_id"], "run_after": values["run_date"],
                "conf": {INPUT_TRIGGER_BUCKET: values[INPUT_TRIGGER_BUCKET],
                         INPUT_TRIGGER_KEY: values[INPUT_TRIGGER_KEY]}})
    return list(runs.values())


def _runs(triggering_asset_events: Mapping[Any, Iterable[Any]]) -> list[dict[str, Any]]:
    """The dispatcher's first task: the runs its asset events ask for."""
    return runs_from_events(event for events in triggering_asset_events.values() for event in events)


def build_dispatch_dag(dispatch: Mapping[str, Any]) -> DAG:
    asset = Asset(name=dispatch["asset_name"], uri=dispatch["asset_uri"],
                  watchers=[AssetWatcher(name=dispatch["asset_name"], trigger=watcher_trigger(dispatch))])
    dag = DAG(
        dag_id=dispatch["dag_id"],
        description=dispatch["description"],
        doc_md=dispatch["doc_md"],
        schedule=[asset],
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=dispatch["tags"],
        max_active_runs=1,  # one reader of the events at a time; each run starts its runs and ends
        is_paused_upon_creation=False,  # a paused dispatcher would leave the objects without runs
        default_args={"owner": dispatch["owner"], "retries": 3, "retry_delay": timedelta(seconds=30)},
    )
    runs = PythonOperator(task_id="read_events", python_callable=_runs, dag=dag)
    TriggerDagRunOperator.partial(
        task_id="start_runs", trigger_dag_id=dispatch["trigger_dag_id"], skip_when_already_exists=True,
        openlineage_inject_parent_info=False, dag=dag,
    ).expand_kwargs(runs.output)
    return dag
