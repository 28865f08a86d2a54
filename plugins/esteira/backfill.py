"""Backfill planning: the cron instants Airflow's backfill of a range would run, for Step Functions.

`esteira backfill` starts one execution per instant on AWS; the instants must be exactly those of
Airflow's own backfill of the same range (`airflow backfill create --from-date --to-date`), so the
two orchestrators fill the same partitions. Airflow plans a backfill with its timetable
(CronTriggerTimetable: `_align_to_next(from)`, then `_get_next` until past `to`, keeping instants
already past); the core cannot import Airflow, so the rules are restated here with croniter and
zoneinfo, the way Airflow applies them (airflow/timetables/_cron.py):

* a cron that does not fire every hour: croniter's next wall-clock time in the zone, made aware
  as Airflow's make_aware does — a time in the spring-forward gap moves forward by the gap (02:30
  becomes 03:30 EDT), a time in the fall-back overlap is its second occurrence;
* a cron that fires every hour: the wall-clock step croniter finds, added in absolute time.

tests/test_backfill.py holds this to Airflow's own planning, DST zones included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from esteira.plan import INPUT_RUN_DATE, INPUT_RUN_ID


@dataclass(frozen=True)
class BackfillRun:
    """One run of a backfill: its logical instant, and the identity both orchestrators give it."""

    instant: datetime  # UTC

    @property
    def run_date(self) -> str:
        return self.instant.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def run_id(self) -> str:
        """Airflow's id of a backfill run of this instant."""
        return f"backfill__{self.instant.isoformat()}"

    @property
    def execution_name(self) -> str:
        """Step Functions' execution name: derived from the instant, so a repeated backfill starts
        nothing twice (names allow letters, digits, '-' and '_')."""
        return f"backfill-{self.instant.strftime('%Y%m%dT%H%M%SZ')}"

    def execution_input(self) -> dict[str, str]:
        return {INPUT_RUN_DATE: self.run_date, INPUT_RUN_ID: self.run_id}


def parse_bound(text: str) -> datetime:
    """A --from/--to value as Airflow's CLI reads it: a bare date is midnight UTC; an ISO 8601
    date-time without an offset is UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def plan_backfill(cron: str, timezone: str, earliest: datetime, latest: datetime,
                  now: datetime | None = None) -> list[BackfillRun]:
    """The runs of a backfill of [earliest, latest] (both inclusive), oldest first, past ones only."""
    timetable = _CronRules(cron, ZoneInfo(timezone))
    now = now or datetime.now(UTC)
    runs = []
    instant = timetable.align_to_next(earliest.astimezone(UTC))
    while instant <= latest and instant < now:
        runs.append(BackfillRun(instant))
        instant = timetable.get_next(instant)
    return runs


class _CronRules:
    def __init__(self, cron: str, zone: ZoneInfo) -> None:
        self.cron = cron
        self.zone = zone
        self.every_hour = croniter(cron).expanded[1] == ["*"]

    def _naive(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def _aware(self, naive: datetime) -> datetime:
        """Airflow's make_aware: the second occurrence of an ambiguous time, a missing one moved on."""
        second = naive.replace(tzinfo=self.zone, fold=1)
        if second.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == naive:
            return second.astimezone(UTC)
        return naive.replace(tzinfo=self.zone, fold=0).astimezone(UTC)  # in the gap: shifted forward

    def get_next(self, current: datetime) -> datetime:
        naive = self._naive(current)
        scheduled = croniter(self.cron, naive).get_next(datetime)
        if not self.every_hour:
            return self._aware(scheduled)
        return current + (scheduled - naive)

    def get_prev(self, current: datetime) -> datetime:
        naive = self._naive(current)
        scheduled = croniter(self.cron, naive).get_prev(datetime)
        if not self.every_hour:
            return self._aware(scheduled)
        return current - (naive - scheduled)

    def align_to_next(self, current: datetime) -> datetime:
        following = self.get_next(current)
        return following if self.get_prev(following) != current else current


__all__ = ["BackfillRun", "parse_bound", "plan_backfill"]
