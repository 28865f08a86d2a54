"""How Airflow knows the run's identity: Jinja expressions rendered when a task starts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from esteira.run_values import RunValue
from esteira.s3_trigger import INPUT_TRIGGER_BUCKET, INPUT_TRIGGER_KEY


def run_date(dag_run: Any) -> str:
    """The logical date in ISO 8601 UTC, as EventBridge's <aws.scheduler.scheduled-time> is.

    Scheduled runs and backfills have a logical date (the cron instant, with
    CronTriggerTimetable); Airflow 3 manual runs may not, and then the run's `run_after`
    (when it was asked to run) is the date.
    """
    when: datetime = getattr(dag_run, "logical_date", None) or dag_run.run_after
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trigger_value(dag_run: Any, name: str) -> str:
    """The run's conf value `name` (trigger_bucket, trigger_key), "" when it has none.

    A run an S3 object started carries them in its conf (esteira.airflow.s3_dispatch, `esteira
    trigger`, or a manual run with the DAG's params); any other run gets "", as on Step Functions.
    """
    value = (getattr(dag_run, "conf", None) or {}).get(name)
    return "" if value is None else str(value)


MACROS = {"esteira_run_date": run_date, "esteira_trigger_value": trigger_value}
JINJA = {
    RunValue.RUN_DATE: "esteira_run_date(dag_run)",
    RunValue.RUN_ID: "dag_run.run_id",
    RunValue.TRIGGER_BUCKET: f"esteira_trigger_value(dag_run, '{INPUT_TRIGGER_BUCKET}')",
    RunValue.TRIGGER_KEY: f"esteira_trigger_value(dag_run, '{INPUT_TRIGGER_KEY}')",
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
