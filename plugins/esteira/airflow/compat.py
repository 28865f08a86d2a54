"""Airflow imports in one place, so that Airflow 2.10/2.11 (MWAA) can be supported here alone."""

from __future__ import annotations

try:  # Airflow 3
    from airflow.sdk import DAG, BaseNotifier, BaseOperator, Context, CronTriggerTimetable

    AIRFLOW_3 = True
except ImportError:  # pragma: no cover - Airflow 2.10/2.11, exercised by the MWAA issue
    from airflow.models.baseoperator import BaseOperator  # type: ignore[no-redef]
    from airflow.models.dag import DAG  # type: ignore[no-redef,assignment]
    from airflow.notifications.basenotifier import BaseNotifier  # type: ignore[no-redef]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[no-redef]
    from airflow.utils.context import Context  # type: ignore[no-redef,assignment]

    AIRFLOW_3 = False

from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator

__all__ = [
    "AIRFLOW_3",
    "DAG",
    "BaseNotifier",
    "BaseOperator",
    "Context",
    "CronTriggerTimetable",
    "EcsRunTaskOperator",
    "SnsNotifier",
]
