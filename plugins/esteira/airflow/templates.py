"""How Airflow knows the run's identity: Jinja expressions rendered when a task starts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from esteira.run_values import RunValue


def run_date(dag_run: Any) -> str:
    """The logical date in ISO 8601 UTC, as EventBridge's <aws.scheduler.scheduled-time> is.

    Scheduled runs and backfills have a logical date (the cron instant, with
    CronTriggerTimetable); Airflow 3 manual runs may not, and then the run's `run_after`
    (when it was asked to run) is the date.
    """
    when: datetime = getattr(dag_run, "logical_date", None) or dag_run.run_after
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MACROS = {"esteira_run_date": run_date}
JINJA = {
    RunValue.RUN_DATE: "esteira_run_date(dag_run)",
    RunValue.RUN_ID: "dag_run.run_id",
}


def jinja(value: RunValue) -> str:
    return "{{ " + JINJA[value] + " }}"


def literal(value: str) -> str:
    """A config value that Airflow's Jinja rendering gives back byte for byte.

    Operators' template fields are rendered with Jinja, so `{{ x }}`, `{% ... %}` or `{# #}` in a
    command or env value would be evaluated (CRLF normalised, a final newline dropped), while Step
    Functions passes the same value on as is. Such a value becomes a Jinja string literal, which renders to exactly its
    text (quotes, backslashes, CR and LF escaped as Jinja's lexer reads them); plain values stay as
    they are, readable in the UI.
    """
    if "{" not in value and "\r" not in value and not value.endswith("\n"):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\r", "\\r").replace("\n", "\\n")
    return "{{ '" + escaped + "' }}"
