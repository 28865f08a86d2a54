"""The run notifications both orchestrators send, defined once.

The body is JSON so that subscribers (e-mail, chat bots, queues) can read it either way; the
run's values stay RunValue placeholders until an orchestrator renders them.
"""

from __future__ import annotations

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


def message_fields(project: str, env: str, status: str) -> dict[str, str | RunValue]:
    return {
        "project": project,
        "env": env,
        "status": status,
        "run_date": RunValue.RUN_DATE,
        "run_id": RunValue.RUN_ID,
    }
