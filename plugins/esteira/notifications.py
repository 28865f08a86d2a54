"""The run notifications both orchestrators send, defined once.

The body is JSON so that subscribers (e-mail, chat bots, queues) can read it either way; the
run's values stay RunValue placeholders until an orchestrator renders them. A FAILED message also
lists why each failed step failed (`failures`): one record per step, in the order of the pipeline's
structure (esteira.graph.structure, the order the state machine's branches run in), with the same
keys and values on both orchestrators:

    {"step": "train", "classification": "application", "exit_code": 1,
     "stop_code": "EssentialContainerExited", "stopped_reason": "Essential container in task exited",
     "log": "https://<region>.console.aws.amazon.com/cloudwatch/home?region=...#logsV2:log-groups/..."}

`classification` is esteira.ecs_failures' (application, infrastructure, timeout), or `unknown` when
esteira did not classify the failure itself (an error of the orchestrator, say); the others are null
when ECS did not say (a task that never ran has no exit code, a timed-out step is stopped by the
orchestrator and reports none of them).
"""

from __future__ import annotations

import enum
from typing import Any
from urllib.parse import quote

from esteira.ecs_failures import StoppedTask
from esteira.run_values import RunValue

SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"


# SNS message attribute carrying the status: subscriptions filter on it, so an address listed only
# under on_failure never receives success messages (one topic per project, see esteira.cloudformation)
STATUS_ATTRIBUTE = "status"


def message_attributes(status: str) -> dict[str, str]:
    return {STATUS_ATTRIBUTE: status}


def subject(project: str, env: str, status: str) -> str:
    """SNS subjects are limited to 100 printable ASCII characters."""
    return f"[esteira] {project} ({env}) {status}"[:100]


class Collected(enum.Enum):
    """A value each orchestrator gathers from the run when it ends."""

    FAILURES = "failures"  # the failed steps' records, in structure order


UNKNOWN = "unknown"  # a failure esteira's classification did not see
NO_TASK = "RunTask placed no task"  # the stopped_reason of an attempt ECS found no capacity for
RECORD_KEYS = ("step", "classification", "exit_code", "stop_code", "stopped_reason", "log")


def message_fields(project: str, env: str, status: str) -> dict[str, str | RunValue | Collected]:
    fields: dict[str, str | RunValue | Collected] = {
        "project": project,
        "env": env,
        "status": status,
        "run_date": RunValue.RUN_DATE,
        "run_id": RunValue.RUN_ID,
    }
    if status == FAILED:
        fields["failures"] = Collected.FAILURES
    return fields


def failure_record(step: str | None, classification: str, *, exit_code: int | None = None,
                   stop_code: str | None = None, stopped_reason: str | None = None,
                   log: str | None = None) -> dict[str, Any]:
    """One failed step, as the message lists it (the key order is part of the bytes)."""
    values = (step, classification, exit_code, stop_code, stopped_reason, log)
    return dict(zip(RECORD_KEYS, values, strict=True))


def stopped_task_record(step: str, classification: str, stopped: StoppedTask, log: str | None) -> dict[str, Any]:
    return failure_record(step, classification, exit_code=stopped.exit_code, stop_code=stopped.stop_code,
                          stopped_reason=stopped.stopped_reason, log=log)


def ecs_task_id(task_arn: str) -> str:
    """arn:aws:ecs:<region>:<account>:task/<cluster>/<id> -> <id> (the last part, in either ARN format)."""
    return task_arn.rsplit("/", 1)[-1]


def log_stream_url_prefix(region: str, log_group: str, stream_prefix: str) -> str:
    """The CloudWatch console address of a task's log stream, up to the task id that ends it.

    awslogs names the stream `<awslogs-stream-prefix>/<container>/<task id>` (`stream_prefix` is the
    first two). The console escapes the group and stream twice in its URL fragment, `%` as `$25`.
    """
    def escape(text: str) -> str:
        return quote(text, safe="").replace("%", "$25")

    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#logsV2:log-groups/log-group/{escape(log_group)}/log-events/{escape(stream_prefix + '/')}")


def log_stream_url(region: str, log_group: str, stream_prefix: str, task_arn: str) -> str:
    return log_stream_url_prefix(region, log_group, stream_prefix) + quote(ecs_task_id(task_arn), safe="")
