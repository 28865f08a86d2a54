"""Re-runs on AWS: which executions are attempts of an instant, and whether to redrive one or start anew.

`esteira rerun` re-runs past cron instants of a project on Step Functions. The rules live here, with
no AWS call, so they are tested on plain data; esteira.stepfunctions_client reads the executions
and acts.

* The attempts of an instant are every execution of the state machine whose RUN_DATE is that
  instant: the ones esteira names after it (`backfill-<instant>`, `rerun-<instant>-<n>`, known by
  name alone) and any other (the schedule's, one started by hand) whose input says so. The state
  machine's own rule decides an execution's RUN_DATE: the input's `run_date` when the input has
  both `run_date` and `run_id`, else the execution's start time to the second (esteira.asl).
* The latest attempt (by start, or by its last redrive) decides. Still running: nothing starts, it
  is followed. Failed, timed out or aborted and Step Functions says it is REDRIVABLE (a standard
  workflow within 14 days of its stop, DescribeExecution's redriveStatus): redrive it, so only the
  states that did not succeed run again, with the same input and RUN_ID. Otherwise (succeeded,
  redrive window passed, never ran): start `rerun-<instant>-<n>`, n one more than any rerun of the
  instant Step Functions still lists, with RUN_DATE = the instant and a new RUN_ID
  `rerun__<instant>__<n>`, so MLflow tells the runs apart.
* Name and input depend only on the instant and the attempts already there, so two invocations
  racing on one instant send the same StartExecution, which Step Functions runs once (it is
  idempotent for a running standard execution with the same name and input).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from esteira.backfill import parse_bound
from esteira.instants import CronInstants
from esteira.plan import INPUT_RUN_DATE, INPUT_RUN_ID

REDRIVE, START, SKIP = "redrive", "start", "skip"
UNSUCCESSFUL = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
ACTIVE = frozenset({"RUNNING", "PENDING_REDRIVE"})  # an attempt under way: never doubled
REDRIVE_WINDOW = timedelta(days=14)  # Step Functions redrives an execution up to 14 days after its stop
_STAMP = "%Y%m%dT%H%M%SZ"
_NAMED = re.compile(r"^(?:backfill-(?P<backfill>\d{8}T\d{6}Z)|rerun-(?P<rerun>\d{8}T\d{6}Z)-(?P<n>[1-9]\d{0,5}))$")


def run_date_text(instant: datetime) -> str:
    """RUN_DATE as the schedule sends it (EventBridge's scheduled-time) and backfills write it."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RerunStart:
    """A new execution of an instant: the n-th rerun, named and identified so it is never confused
    with the backfill or the schedule's run of the same instant."""

    instant: datetime  # UTC
    number: int

    @property
    def run_date(self) -> str:
        return run_date_text(self.instant)

    @property
    def run_id(self) -> str:
        return f"rerun__{self.instant.isoformat()}__{self.number}"

    @property
    def execution_name(self) -> str:
        return f"rerun-{self.instant.strftime(_STAMP)}-{self.number}"

    def execution_input(self) -> dict[str, str]:
        return {INPUT_RUN_DATE: self.run_date, INPUT_RUN_ID: self.run_id}


@dataclass(frozen=True)
class Attempt:
    """One execution of the state machine, as far as re-running its instant goes. The fields after
    `redriven` come from DescribeExecution; `described` says whether they have been read."""

    name: str
    status: str
    started: datetime
    redriven: datetime | None = None
    described: bool = False
    input: str = "{}"
    redrive_status: str | None = None  # REDRIVABLE, NOT_REDRIVABLE, ...; absent from some emulators (moto)
    redrive_reason: str | None = None
    redrive_count: int = 0

    @property
    def last_tried(self) -> datetime:
        return max(self.started, self.redriven or self.started)


@dataclass(frozen=True)
class RerunAction:
    """What `esteira rerun` does for one instant: redrive `execution_name`, start it, or skip it
    (an attempt is under way). `start` is the instant's next free new execution: the action itself
    for START, the fallback when Step Functions refuses a REDRIVE after all."""

    instant: datetime
    action: str
    execution_name: str
    execution_input: str  # JSON the execution runs with (a redrive keeps the original's)
    why: str
    start: RerunStart
    redrive_count: int = 0  # of the execution redriven, before this redrive

    @property
    def run_date(self) -> str:
        return run_date_text(self.instant)


def instant_of_name(name: str) -> datetime | None:
    """The instant an esteira-named execution (backfill or rerun) runs, read from its name."""
    match = _NAMED.match(name)
    if match is None:
        return None
    return datetime.strptime(match["backfill"] or match["rerun"], _STAMP).replace(tzinfo=UTC)


def rerun_number(name: str) -> int:
    """n of `rerun-<instant>-<n>`; 0 for any other name."""
    match = _NAMED.match(name)
    return int(match["n"]) if match is not None and match["n"] else 0


def run_date_of(execution_input: str, started: datetime) -> datetime | None:
    """The RUN_DATE the state machine used: the input's when it has run_date and run_id (the ASL's
    Choice), else the start time to the second. None when the input's run_date is not a date."""
    try:
        given = json.loads(execution_input)
    except ValueError:
        given = None
    if not (isinstance(given, dict) and INPUT_RUN_DATE in given and INPUT_RUN_ID in given):
        return started.astimezone(UTC).replace(microsecond=0)
    try:
        return parse_bound(str(given[INPUT_RUN_DATE])).astimezone(UTC)
    except ValueError:
        return None


def latest(attempts: list[Attempt]) -> Attempt:
    return max(attempts, key=lambda attempt: attempt.last_tried)


def next_start(instant: datetime, attempts: list[Attempt]) -> RerunStart:
    """The next free rerun of the instant: one more than any rerun Step Functions still lists."""
    return RerunStart(instant, 1 + max((rerun_number(a.name) for a in attempts), default=0))


def decide(instant: datetime, attempts: list[Attempt], *, failed_only: bool) -> RerunAction | None:
    """The action for one instant given all its attempts (the latest described); None when
    `failed_only` and its latest attempt did not fail (or it never ran)."""
    start = next_start(instant, attempts)
    start_input = json.dumps(start.execution_input())
    if not attempts:
        return None if failed_only else RerunAction(instant, START, start.execution_name, start_input,
                                                    "never ran", start)
    last = latest(attempts)
    if not last.described:
        raise ValueError(f"the latest attempt of {run_date_text(instant)} ({last.name}) was not described")
    if last.status in ACTIVE:
        return RerunAction(instant, SKIP, last.name, last.input, f"{last.status}: not started again", start)
    if last.status not in UNSUCCESSFUL:
        if failed_only:
            return None
        return RerunAction(instant, START, start.execution_name, start_input, f"{last.name} {last.status}", start)
    if last.redrive_status == "REDRIVABLE":
        return RerunAction(instant, REDRIVE, last.name, last.input, f"{last.name} {last.status}", start,
                           last.redrive_count)
    reason = last.redrive_reason or (f"redrive status {last.redrive_status}" if last.redrive_status
                                     else "Step Functions gave no redrive status")
    return RerunAction(instant, START, start.execution_name, start_input,
                       f"{last.name} {last.status}, not redrivable: {reason}", start)


def check_instant(cron: str, timezone: str, value: datetime, now: datetime | None = None) -> datetime:
    """`value` (UTC) when it is a past instant of the cron in the zone (esteira.instants, as both
    orchestrators place them); else ValueError naming the nearest instants, so a typo costs one try."""
    value = value.astimezone(UTC)
    now = now or datetime.now(UTC)
    instants = CronInstants(cron, timezone)
    if not instants.fires_at(value):
        near = [_shown(instants.before(value), timezone), _shown(instants.after(value), timezone)]
        raise ValueError(f"{run_date_text(value)} is not an instant of '{cron}' ({timezone}); "
                         f"nearest instants: {' and '.join(near)}")
    if value >= now:
        raise ValueError(f"{run_date_text(value)} has not come yet: only past instants can be re-run")
    return value


def _shown(instant: datetime, timezone: str) -> str:
    if timezone == "UTC":
        return run_date_text(instant)
    return f"{run_date_text(instant)} ({instant.astimezone(ZoneInfo(timezone)).isoformat()} {timezone})"


__all__ = ["ACTIVE", "REDRIVE", "REDRIVE_WINDOW", "SKIP", "START", "UNSUCCESSFUL", "Attempt", "RerunAction",
           "RerunStart", "check_instant", "decide", "instant_of_name", "latest", "next_start", "rerun_number",
           "run_date_of", "run_date_text"]
