"""How Airflow knows the run's identity: Jinja expressions rendered when a task starts."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from esteira.runspec import RunValue


def run_date(dag_run: Any) -> str:
    """The logical date in ISO 8601 UTC, as EventBridge's <aws.scheduler.scheduled-time> is.

    Scheduled runs and backfills have a logical date (the cron instant, with
    CronTriggerTimetable); Airflow 3 manual runs may not, and then the run's `run_after`
    (when it was asked to run) is the date.
    """
    when = getattr(dag_run, "logical_date", None) or dag_run.run_after
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MACROS = {"esteira_run_date": run_date}
JINJA = {
    RunValue.RUN_DATE: "esteira_run_date(dag_run)",
    RunValue.RUN_ID: "dag_run.run_id",
}


def jinja(value: RunValue) -> str:
    return "{{ " + JINJA[value] + " }}"
