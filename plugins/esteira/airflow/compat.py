"""Airflow imports in one place: Airflow 3.x, and 2.10/2.11 (the Airflow 2 that MWAA runs).

The version decides the import path, rather than trying Airflow 3's first: a name missing from
`airflow.sdk` in some Airflow 3 must fail loudly, not fall back to the 2.x paths that Airflow 3
still ships as deprecated shims. What else differs, and why nothing more is needed here
(tests_airflow2/ checks each under Airflow 2.11):

* esteira's timetable (esteira.airflow.timetable) builds on `airflow.timetables.base`, the same
  in both.
* `task_display_name` exists since 2.9; `owner_links`, `is_paused_upon_creation`, `schedule=`
  (a timetable or None) and `catchup` are DAG arguments in 2.10+ too (catchup is always passed:
  its default is True in 2.x, False in 3.x).
* `BaseNotifier` lives in airflow.notifications.basenotifier in 2.x; the amazon provider's
  `SnsNotifier` and `EcsRunTaskOperator` import the same way in both.
* RUN_DATE: `dag_run.logical_date` always exists in 2.x (Airflow 3 manual runs may have none, and
  then templates.run_date falls back to `run_after`, which 2.x does not have nor need).
* `Param` (a triggered project's params) is airflow.sdk's in 3.x, airflow.models.param's in 2.x; the
  S3 trigger's AssetWatcher exists only in 3.x (esteira.airflow.s3_dispatch is never imported on 2.x).
* `dag.test()`: the tests pass `logical_date` in 3.x and `execution_date` in 2.x.
* `AirflowException`/`AirflowFailException` (esteira.airflow.ecs_operator: a failure Airflow
  retries, one it must not) moved to airflow.sdk.exceptions in 3.x, whose airflow.exceptions
  names are deprecated shims; the provider's `EcsOperatorError` and `generate_uuid` (the
  `startedBy` its reattach looks tasks up by) import the same way in both.
* Deferral (esteira.airflow.ecs_trigger): `BaseTrigger`/`TriggerEvent` live in airflow.triggers.base
  in both, as do the provider's EcsHook and AwsLogsHook. A trigger that outlived its timeout resumes
  the task with next_method "__fail__" and an error that differs: "Trigger/execution timeout" (2.x's
  scheduler), "Trigger timeout" (3.x's TriggerFailureReason.TRIGGER_TIMEOUT).
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION
from airflow.providers.amazon.aws.exceptions import EcsOperatorError
from airflow.providers.amazon.aws.hooks.ecs import EcsHook
from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator
from airflow.providers.amazon.aws.utils.identifiers import generate_uuid
from airflow.providers.amazon.aws.utils.task_log_fetcher import AwsTaskLogFetcher
from airflow.triggers.base import BaseTrigger, TriggerEvent

_MAJOR_MINOR = tuple(int(part) for part in AIRFLOW_VERSION.split(".")[:2])
if _MAJOR_MINOR < (2, 10):  # pragma: no cover - shown as the DAG file's import error in the UI
    raise ImportError(f"esteira's DAGs need Airflow 2.10 or later (MWAA runs 2.10, 2.11 and 3.x); "
                      f"this is Airflow {AIRFLOW_VERSION}")
AIRFLOW_3 = _MAJOR_MINOR >= (3, 0)
TRIGGER_FAIL = "__fail__"  # next_method of a task resumed to fail: its trigger failed or timed out
TRIGGER_TIMEOUT_ERRORS = frozenset({"Trigger/execution timeout", "Trigger timeout"})  # 2.x's, 3.x's

if AIRFLOW_3:
    from airflow.sdk import DAG, BaseNotifier, BaseOperator, Context, Param
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
else:  # Airflow 2.10/2.11
    from airflow.exceptions import AirflowException, AirflowFailException
    from airflow.models.baseoperator import BaseOperator
    from airflow.models.dag import DAG
    from airflow.models.param import Param
    from airflow.notifications.basenotifier import BaseNotifier
    from airflow.utils.context import Context

__all__ = [
    "AIRFLOW_3",
    "AIRFLOW_VERSION",
    "DAG",
    "TRIGGER_FAIL",
    "TRIGGER_TIMEOUT_ERRORS",
    "AirflowException",
    "AirflowFailException",
    "AwsLogsHook",
    "AwsTaskLogFetcher",
    "BaseNotifier",
    "BaseOperator",
    "BaseTrigger",
    "Context",
    "EcsHook",
    "EcsOperatorError",
    "EcsRunTaskOperator",
    "Param",
    "SnsNotifier",
    "TriggerEvent",
    "generate_uuid",
]
