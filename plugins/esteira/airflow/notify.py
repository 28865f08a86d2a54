"""Run notifications as DAG callbacks: SNS through the provider's SnsNotifier on ECS, a log line locally.

The message is rendered in Python from the callback's dag run (not with Jinja): callbacks
may get a serialized DAG that has no template environment.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from esteira import notifications
from esteira.airflow.compat import Context, SnsNotifier
from esteira.airflow.templates import run_date
from esteira.runspec import ProjectRunSpec, RunValue

log = logging.getLogger("esteira")


def render_message(project: str, env: str, status: str, dag_run: Any) -> str:
    values = {RunValue.RUN_DATE: run_date(dag_run), RunValue.RUN_ID: dag_run.run_id}
    fields = notifications.message_fields(project, env, status)
    # compact, like Step Functions' States.JsonToString: both orchestrators send the same bytes
    return json.dumps({k: values[v] if isinstance(v, RunValue) else v for k, v in fields.items()},
                      separators=(",", ":"), ensure_ascii=False)


class RunNotifier:
    """A DAG callback; builds a fresh SnsNotifier per call, since notifiers render in place."""

    def __init__(self, spec: ProjectRunSpec, status: str) -> None:
        self.project = spec.project.name
        self.env = spec.target.env
        self.status = status
        self.placement = spec.placement
        self.topic_arn: str | None = None
        if spec.target.aws is not None:
            aws = spec.target.aws
            self.topic_arn = spec.project.names.sns_topic_arn(aws.region, aws.account_id)

    def __call__(self, context: Context) -> None:
        message = render_message(self.project, self.env, self.status, context["dag_run"])
        subject = notifications.subject(self.project, self.env, self.status)
        if self.topic_arn is None or self.placement is None:
            log.info("esteira notification (local backend, not published): %s %s", subject, message)
            return
        SnsNotifier(
            aws_conn_id=self.placement.aws_conn_id,
            region_name=self.placement.region,
            target_arn=self.topic_arn,
            subject=subject,
            message=message,
            message_attributes=notifications.message_attributes(self.status),
        )(context)


def callbacks(spec: ProjectRunSpec) -> dict[str, Any]:
    """DAG kwargs for the config's notifications (only for the lists that are not empty)."""
    cfg = spec.project.config.notifications
    out: dict[str, Any] = {}
    if cfg.on_success:
        out["on_success_callback"] = RunNotifier(spec, notifications.SUCCEEDED)
    if cfg.on_failure:
        out["on_failure_callback"] = RunNotifier(spec, notifications.FAILED)
    return out
