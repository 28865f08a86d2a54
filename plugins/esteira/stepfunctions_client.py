"""Step Functions calls esteira makes (start a backfill's executions), kept apart from the renderers.

Takes a boto3 session, so tests hand it moto's and CI its OIDC role's. Executions are named after
their instant (esteira.backfill), so starting a backfill twice starts nothing twice: an execution
that exists is reported with its status instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from esteira.backfill import BackfillRun

FINISHED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class BackfillError(Exception):
    """AWS refused a call; the message is AWS's."""


@dataclass
class BackfillResult:
    started: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)  # execution name -> final (or last seen) status

    @property
    def failed(self) -> list[str]:
        return [name for name, status in self.status.items() if status in FINISHED - {"SUCCEEDED"}]


def execution_arn(state_machine_arn: str, name: str) -> str:
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def run_backfill(session: Any, state_machine_arn: str, runs: Sequence[BackfillRun], *, max_concurrency: int = 1,
                 wait: bool = True, say: Callable[[str], None] = print, poll_seconds: float = 5.0) -> BackfillResult:
    """Start the runs oldest first, at most `max_concurrency` running at once (1: one after the other,
    so a run sees the models its earlier dates registered); with `wait`, until all have finished."""
    from botocore.exceptions import BotoCoreError, ClientError

    sfn = session.client("stepfunctions")
    result = BackfillResult()
    running: list[str] = []
    try:
        for run in runs:
            while len(running) >= max_concurrency:
                running = _still_running(sfn, state_machine_arn, running, result, say, poll_seconds)
            name = run.execution_name
            current = _status(sfn, execution_arn(state_machine_arn, name))
            if current is not None:
                result.existing.append(name)
                result.status[name] = current
                say(f"{run.run_date}  {name}  exists ({current}): not started again")
                if current == "RUNNING":
                    running.append(name)
                continue
            sfn.start_execution(stateMachineArn=state_machine_arn, name=name,
                                input=json.dumps(run.execution_input(), separators=(",", ":")))
            result.started.append(name)
            result.status[name] = "RUNNING"
            running.append(name)
            say(f"{run.run_date}  {name}  started")
        while wait and running:
            running = _still_running(sfn, state_machine_arn, running, result, say, poll_seconds)
    except (ClientError, BotoCoreError) as exc:
        raise BackfillError(str(exc)) from None
    return result


def _status(sfn: Any, arn: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        return str(sfn.describe_execution(executionArn=arn)["status"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        raise


def _still_running(sfn: Any, state_machine_arn: str, names: list[str], result: BackfillResult,
                   say: Callable[[str], None], poll_seconds: float) -> list[str]:
    """The names still RUNNING, after one look (and a pause when none has finished)."""
    left = []
    for name in names:
        status = _status(sfn, execution_arn(state_machine_arn, name)) or "RUNNING"
        result.status[name] = status
        if status == "RUNNING":
            left.append(name)
        else:
            say(f"{'':20}  {name}  {status}")
    if len(left) == len(names):
        time.sleep(poll_seconds)
    return left
