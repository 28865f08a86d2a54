"""Run notifications as DAG callbacks: SNS through the provider's SnsNotifier on ECS, a log line locally.

The message is rendered in Python from the callback's dag run (not with Jinja): callbacks
may get a serialized DAG that has no template environment.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from esteira import notifications
from esteira.airflow.compat import Context, SnsNotifier
from esteira.airflow.run_failures import failed_steps
from esteira.airflow.templates import run_date
from esteira.run_values import RunValue

log = logging.getLogger("esteira")


def run_identity(context: Context) -> tuple[str | None, str]:
    """(RUN_DATE, RUN_ID) of the run a callback is about.

    Airflow 3.3's DAG processor calls DAG callbacks with a minimal context `{dag, run_id, reason}`
    when it has no task instance to attach (a deadlocked run, say): there is no `dag_run` then, and
    the date comes from the run id Airflow generated (`scheduled__<ISO date>`), or is unknown
    (null) for a run id someone chose. A failure must be notified even then.
    """
    dag_run = context.get("dag_run")
    if dag_run is not None:
        return run_date(dag_run), dag_run.run_id
    run_id = str(context["run_id"])
    _, sep, stamp = run_id.partition("__")
    try:
        when = datetime.fromisoformat(stamp) if sep else None
    except ValueError:
        when = None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None), run_id


def run_failures(context: Context, run_id: str, order: list[str]) -> list[dict[str, Any]] | None:
    """The failed steps' records (esteira.notifications), in `order` (the pipeline's structure, as the
    state machine lists them); None when Airflow could not say (the message still goes out)."""
    try:
        records = failed_steps(context["dag"].dag_id, run_id)
    except Exception:  # a notification must not be lost to a failed lookup
        log.warning("esteira: could not read why the run's steps failed", exc_info=True)
        return None
    steps = [s for s in order if s in records] + sorted(set(records) - set(order))
    return [records[s] or notifications.failure_record(s, notifications.UNKNOWN) for s in steps]


def render_message(project: str, env: str, status: str, context: Context, order: list[str] | None = None) -> str:
    date, run_id = run_identity(context)
    values: dict[RunValue | notifications.Collected, Any] = {RunValue.RUN_DATE: date, RunValue.RUN_ID: run_id}
    fields = notifications.message_fields(project, env, status)
    if notifications.Collected.FAILURES in fields.values():
        values[notifications.Collected.FAILURES] = run_failures(context, run_id, order or [])
    # compact, like Step Functions' States.JsonToString: both orchestrators send the same bytes
    return json.dumps({k: values[v] if isinstance(v, RunValue | notifications.Collected) else v
                       for k, v in fields.items()},
                      separators=(",", ":"), ensure_ascii=False)


class RunNotifier:
    """A DAG callback; builds a fresh SnsNotifier per call, since notifiers render in place."""

    def __init__(self, *, project: str, env: str, status: str, topic_arn: str | None,
                 aws_conn_id: str | None, region: str | None, order: list[str] | None = None) -> None:
        self.order = order or []
        self.project = project
        self.env = env
        self.status = status
        self.topic_arn = topic_arn
        self.aws_conn_id = aws_conn_id
        self.region = region

    def __call__(self, context: Context) -> None:
        message = render_message(self.project, self.env, self.status, context, self.order)
        subject = notifications.subject(self.project, self.env, self.status)
        if self.topic_arn is None or self.aws_conn_id is None:
            log.info("esteira notification (local backend, not published): %s %s", subject, message)
            return
        SnsNotifier(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region,
            target_arn=self.topic_arn,
            subject=subject,
            message=message,
            message_attributes=notifications.message_attributes(self.status),
        ).notify(context)  # type: ignore[no-untyped-call]  # the provider's, unannotated; not __call__: that renders Jinja over the message (a stopped reason may hold
        # "{{"), and needs the DAG's template environment, which dag.test()'s serialized DAG lacks


CALLBACK_OF_STATUS = {notifications.SUCCEEDED: "on_success_callback", notifications.FAILED: "on_failure_callback"}


def callbacks(notify: dict[str, Any]) -> dict[str, Any]:
    """DAG kwargs for a DagSpec's notifications (only for the statuses someone is notified of)."""
    fields = {k: notify[k] for k in ("project", "env", "topic_arn", "aws_conn_id", "region", "order")}
    return {CALLBACK_OF_STATUS[status]: RunNotifier(status=status, **fields) for status in notify["statuses"]}
