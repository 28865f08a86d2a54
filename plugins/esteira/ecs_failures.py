"""Why an ECS task failed: the job (application) or the capacity under it (infrastructure).

Spot capacity is taken back often, and tasks fail to start for reasons that are not the job's:
those are retried against the step's infrastructure budget (`infra_retries`), never against its
`retries`. The one table below decides for both orchestrators: esteira.airflow.ecs_operator reads
it in Python, esteira.asl renders it as the Choice rules of each step's state machine branch.

The ECS facts (API reference, "Stopped tasks error codes", shared/NOTES.md):

* `stopCode` SpotInterruption (the spot instance was reclaimed), TerminationNotice (the instance or
  Fargate host is being retired), InfrastructureHealth and TaskFailedToStart (image pull, secrets,
  network interface or volume set-up failed before the container ran) are the platform's;
* EssentialContainerExited is the job's exit (its exit code decides), UserInitiated a StopTask
  (esteira's own timeout, or a person), ServiceSchedulerInitiated a service's (not used here);
* a `stoppedReason` "Host EC2 (instance i-…) terminated." or "… stopped" and a container
  `reason` starting CannotPullContainerError, CannotStartContainerError, CannotStopContainerError,
  CannotInspectContainerError, CannotCreateVolumeError, ResourceInitializationError,
  ContainerRuntimeTimeoutError or DockerTimeoutError say the same when the stop code does not.

Everything else — a non-zero exit code, no exit code, OutOfMemoryError (the job's sizing) — is the
application's. Written here because no library classifies ECS stops.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

APPLICATION, INFRASTRUCTURE, TIMEOUT = "application", "infrastructure", "timeout"
INFRA_BACKOFF_RATE = 2.0  # each infrastructure retry waits twice as long as the one before
INFRA_ERROR = "esteira.InfrastructureFailure"  # the state machine's name for such a failure


class Field(StrEnum):
    STOP_CODE = "stopCode"
    STOPPED_REASON = "stoppedReason"
    CONTAINER_REASON = "containerReason"  # the (single) container's `reason`


@dataclass(frozen=True)
class Rule:
    """`field` matches `pattern`, where `*` stands for any text (ASL's StringMatches): an
    infrastructure failure. Patterns are few and short: each step's state machine carries them."""

    field: Field
    pattern: str

    def matches(self, text: str | None) -> bool:
        if text is None:
            return False
        regex = ".*".join(re.escape(part) for part in self.pattern.split("*"))
        return re.fullmatch(regex, text, flags=re.DOTALL) is not None


INFRASTRUCTURE_RULES: tuple[Rule, ...] = (
    *(Rule(Field.STOP_CODE, code) for code in
      ("SpotInterruption", "TerminationNotice", "InfrastructureHealth", "TaskFailedToStart")),
    Rule(Field.STOPPED_REASON, "Host EC2*"),  # "Host EC2 (instance i-…) terminated." / "… stopped."
    # CannotPullContainerError, CannotStartContainerError, CannotStopContainerError,
    # CannotInspectContainerError, CannotCreateVolumeError
    Rule(Field.CONTAINER_REASON, "Cannot*Error*"),
    Rule(Field.CONTAINER_REASON, "ResourceInitializationError*"),
    Rule(Field.CONTAINER_REASON, "*TimeoutError*"),  # ContainerRuntimeTimeoutError, DockerTimeoutError
)


@dataclass(frozen=True)
class StoppedTask:
    """What the rules read from a stopped ECS task (DescribeTasks' camelCase or the state machine's
    PascalCase description)."""

    stop_code: str | None
    stopped_reason: str | None
    container_reason: str | None
    exit_code: int | None

    @classmethod
    def from_description(cls, task: dict[str, Any]) -> StoppedTask:
        def get(data: dict[str, Any], name: str) -> Any:
            return data.get(name, data.get(name[:1].upper() + name[1:]))

        containers = get(task, "containers") or [{}]
        container = containers[0] if isinstance(containers[0], dict) else {}
        exit_code = get(container, "exitCode")
        return cls(get(task, "stopCode"), get(task, "stoppedReason"), get(container, "reason"),
                   exit_code if isinstance(exit_code, int) else None)

    def field(self, field: Field) -> str | None:
        return {Field.STOP_CODE: self.stop_code, Field.STOPPED_REASON: self.stopped_reason,
                Field.CONTAINER_REASON: self.container_reason}[field]

    @property
    def succeeded(self) -> bool:
        """EcsRunTaskOperator's rule, and the state machine's: the container exited with 0."""
        return self.exit_code == 0

    def classification(self) -> str:
        """INFRASTRUCTURE when a rule matches (checked first: a reclaimed spot instance kills the
        container too, with a non-zero code), else APPLICATION. Only for a failed task."""
        if any(rule.matches(self.field(rule.field)) for rule in INFRASTRUCTURE_RULES):
            return INFRASTRUCTURE
        return APPLICATION

    def describe(self) -> str:
        """One line for a log or a notification: what ECS said."""
        parts = [f"exit code {self.exit_code}" if self.exit_code is not None else "no exit code"]
        parts += [f"{label} {value}" for label, value in (("stop code", self.stop_code),
                                                          ("stopped reason", self.stopped_reason),
                                                          ("container reason", self.container_reason)) if value]
        return ", ".join(parts)


def infra_delay_seconds(first_delay: int, attempt: int) -> float:
    """The wait before infrastructure retry number `attempt` (1-based), as Step Functions' Retry
    computes it: IntervalSeconds x BackoffRate^(attempt-1)."""
    return first_delay * INFRA_BACKOFF_RATE ** (attempt - 1)


# Per ECS task, on top of its timeout in Airflow's outer guard: RunTask, the last DescribeTasks,
# StopTask and the log reader's last read (it sleeps up to awslogs_fetch_interval, 30 s, in provider 9.8.0).
TASK_OVERHEAD_SECONDS = 60


def try_timeout_seconds(task_timeout_seconds: int, infra_retries: int, infra_retry_delay_seconds: int) -> int:
    """Airflow's execution_timeout for one try of esteira.airflow.ecs_operator: every ECS task it may
    run at its full timeout, the waits between them, and TASK_OVERHEAD_SECONDS per task. Larger than
    anything the operator does itself, so it fires only if the worker hangs (e.g. on an AWS call)."""
    tasks = 1 + infra_retries
    waits = sum(infra_delay_seconds(infra_retry_delay_seconds, n) for n in range(1, infra_retries + 1))
    return math.ceil(tasks * (task_timeout_seconds + TASK_OVERHEAD_SECONDS) + waits)


__all__ = [
    "APPLICATION",
    "INFRASTRUCTURE",
    "INFRASTRUCTURE_RULES",
    "INFRA_BACKOFF_RATE",
    "INFRA_ERROR",
    "TASK_OVERHEAD_SECONDS",
    "TIMEOUT",
    "Field",
    "Rule",
    "StoppedTask",
    "infra_delay_seconds",
    "try_timeout_seconds",
]
