"""Step Functions calls esteira makes (a backfill's executions, re-runs), kept apart from the renderers.

Takes a boto3 session, so tests hand it moto's and CI its OIDC role's. Executions are named after
their instant (esteira.backfill), so starting a backfill twice starts nothing twice: an execution
that exists is reported with its status instead. Re-runs follow esteira.rerun's rules: redrive the
latest failed attempt of an instant when Step Functions allows it, else start a new execution.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from esteira.backfill import BackfillRun
from esteira.rerun import (
    ACTIVE,
    REDRIVE,
    SKIP,
    UNSUCCESSFUL,
    Attempt,
    RerunAction,
    RerunStart,
    decide,
    instant_of_name,
    latest,
    run_date_of,
)

FINISHED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class StepFunctionsError(Exception):
    """AWS refused a call; the message is AWS's."""


class BackfillError(StepFunctionsError):
    """AWS refused a call of a backfill; the message is AWS's."""


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


@dataclass
class RerunResult:
    redriven: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)  # attempts already under way: followed, not doubled
    existing: list[str] = field(default_factory=list)  # a start another invocation made first
    status: dict[str, str] = field(default_factory=dict)  # execution name -> final (or last seen) status

    @property
    def failed(self) -> list[str]:
        return [name for name, status in self.status.items() if status in UNSUCCESSFUL]


def plan_rerun(session: Any, state_machine_arn: str, *, instants: Sequence[datetime] | None = None,
               failed_between: tuple[datetime, datetime] | None = None) -> list[RerunAction]:
    """What a re-run does, oldest first, reading Step Functions only: for each of `instants` whatever
    its latest attempt did, or (`failed_between`, RUN_DATE bounds inclusive) for every instant whose
    latest attempt failed, timed out or was aborted. Rules: esteira.rerun."""
    from botocore.exceptions import BotoCoreError, ClientError

    if (instants is None) == (failed_between is None):
        raise ValueError("give the instants or the range of failed ones, not both")
    sfn = session.client("stepfunctions")
    try:
        targets = sorted(set(instants or []))
        since = failed_between[0] if failed_between else (targets[0] if targets else None)
        if since is None:
            return []
        attempts = _attempts_since(sfn, state_machine_arn, since)
        if failed_between:
            low, high = failed_between
            targets = sorted(instant for instant, group in attempts.items()
                             if low <= instant <= high and latest(group).status in UNSUCCESSFUL)
        actions = []
        for instant in targets:
            group = _latest_described(sfn, state_machine_arn, attempts.get(instant, []))
            action = decide(instant, group, failed_only=failed_between is not None)
            if action is not None:
                actions.append(action)
    except (ClientError, BotoCoreError) as exc:
        raise StepFunctionsError(str(exc)) from None
    return actions


def run_rerun(session: Any, state_machine_arn: str, actions: Sequence[RerunAction], *, max_concurrency: int = 1,
              wait: bool = True, say: Callable[[str], None] = print, poll_seconds: float = 5.0) -> RerunResult:
    """Carry out the actions oldest first, at most `max_concurrency` under way at once (attempts already
    running count), as a backfill does; with `wait`, until all have ended, saying each final status."""
    from botocore.exceptions import BotoCoreError, ClientError

    sfn = session.client("stepfunctions")
    result = RerunResult()
    # execution name -> the redriveCount DescribeExecution must show before its status is this attempt's
    watching: dict[str, int] = {}
    try:
        for action in actions:
            while len(watching) >= max_concurrency:
                _watch(sfn, state_machine_arn, watching, result, say, poll_seconds)
            name, redrives = _carry_out(sfn, state_machine_arn, action, result, say)
            watching[name] = redrives
        while wait and watching:
            _watch(sfn, state_machine_arn, watching, result, say, poll_seconds)
    except (ClientError, BotoCoreError) as exc:
        raise StepFunctionsError(str(exc)) from None
    return result


def redrive_token(arn: str, redrive_count: int) -> str:
    """RedriveExecution's clientToken: one per execution and attempt, so two invocations redriving the
    same failed attempt within Step Functions' 15 minutes make one redrive (at most 64 characters)."""
    return f"esteira-{redrive_count}-{hashlib.sha256(arn.encode()).hexdigest()[:40]}"


def _attempts_since(sfn: Any, state_machine_arn: str, since: datetime) -> dict[datetime, list[Attempt]]:
    """The attempts of each instant from `since` on. Executions esteira named are placed by their name;
    any other started since then is described to read its RUN_DATE (the schedule starts an instant's
    execution at the instant, so one started earlier is no attempt of it)."""
    groups: dict[datetime, list[Attempt]] = {}
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        for item in page["executions"]:
            attempt = Attempt(item["name"], item["status"], item["startDate"], item.get("redriveDate"))
            instant = instant_of_name(attempt.name)
            if instant is None:
                if attempt.started < since:
                    continue
                attempt = _described(sfn, item["executionArn"], attempt)
                instant = run_date_of(attempt.input, attempt.started)
            if instant is not None and instant >= since:
                groups.setdefault(instant, []).append(attempt)
    return groups


def _latest_described(sfn: Any, state_machine_arn: str, group: list[Attempt]) -> list[Attempt]:
    """The group with its latest attempt described: its redrive status and input decide the action."""
    if not group or latest(group).described:
        return group
    last = latest(group)
    fresh = _described(sfn, execution_arn(state_machine_arn, last.name), last)
    return [fresh if attempt is last else attempt for attempt in group]


def _described(sfn: Any, arn: str, attempt: Attempt) -> Attempt:
    found = sfn.describe_execution(executionArn=arn)
    return replace(attempt, status=str(found["status"]), described=True, input=found.get("input", "{}"),
                   redriven=found.get("redriveDate", attempt.redriven), redrive_status=found.get("redriveStatus"),
                   redrive_reason=found.get("redriveStatusReason"), redrive_count=int(found.get("redriveCount", 0)))


def _carry_out(sfn: Any, state_machine_arn: str, action: RerunAction, result: RerunResult,
               say: Callable[[str], None]) -> tuple[str, int]:
    """Redrive, start or follow one instant's execution; its name and the redriveCount to wait for."""
    from botocore.exceptions import ClientError

    name = action.execution_name
    if action.action == SKIP:
        result.running.append(name)
        result.status[name] = "RUNNING"
        say(f"{action.run_date}  {name}  {action.why}")
        return name, 0
    if action.action != REDRIVE:
        return _start(sfn, state_machine_arn, action.start, action.why, result, say)
    arn = execution_arn(state_machine_arn, name)
    try:
        sfn.redrive_execution(executionArn=arn, clientToken=redrive_token(arn, action.redrive_count))
    except ClientError as exc:
        if _code(exc) != "ExecutionNotRedrivable":
            raise
        now = _describe(sfn, arn) or {}
        if now.get("status") in ACTIVE:  # another invocation redrove it first: follow that one
            result.running.append(name)
            result.status[name] = str(now["status"])
            say(f"{action.run_date}  {name}  {now['status']}: not redriven again")
            return name, 0
        say(f"{action.run_date}  {name}  not redrivable after all ({exc.response['Error'].get('Message', '')})")
        return _start(sfn, state_machine_arn, action.start, f"{name} not redrivable", result, say)
    result.redriven.append(name)
    result.status[name] = "RUNNING"
    say(f"{action.run_date}  {name}  redriven ({action.why})")
    return name, action.redrive_count + 1


def _start(sfn: Any, state_machine_arn: str, start: RerunStart, why: str, result: RerunResult,
           say: Callable[[str], None]) -> tuple[str, int]:
    from botocore.exceptions import ClientError

    name = start.execution_name
    try:
        sfn.start_execution(stateMachineArn=state_machine_arn, name=name,
                            input=json.dumps(start.execution_input(), separators=(",", ":")))
    except ClientError as exc:
        if _code(exc) != "ExecutionAlreadyExists":
            raise
        # the same name is the same instant and number: another invocation started it first
        status = _status(sfn, execution_arn(state_machine_arn, name)) or "RUNNING"
        result.existing.append(name)
        result.status[name] = status
        say(f"{start.run_date}  {name}  exists ({status}): not started again")
        return name, 0
    result.started.append(name)
    result.status[name] = "RUNNING"
    say(f"{start.run_date}  {name}  started ({why})")
    return name, 0


def _watch(sfn: Any, state_machine_arn: str, watching: dict[str, int], result: RerunResult,
           say: Callable[[str], None], poll_seconds: float) -> None:
    """One look at the executions under way; those ended leave `watching` (a pause when none has)."""
    ended = False
    for name, redrives in list(watching.items()):
        found = _describe(sfn, execution_arn(state_machine_arn, name))
        status = "RUNNING" if found is None else str(found["status"])
        if found is not None and status not in ACTIVE and int(found.get("redriveCount", redrives)) < redrives:
            status = "RUNNING"  # DescribeExecution is eventually consistent: the redrive is not visible yet
        result.status[name] = status
        if status in ACTIVE:
            continue
        del watching[name]
        ended = True
        say(f"{'':20}  {name}  {status}")
    if not ended:
        time.sleep(poll_seconds)


def _describe(sfn: Any, arn: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return dict(sfn.describe_execution(executionArn=arn))
    except ClientError as exc:
        if _code(exc) == "ExecutionDoesNotExist":
            return None
        raise


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
