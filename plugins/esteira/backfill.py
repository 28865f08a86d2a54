"""Backfill planning: the cron instants Airflow's backfill of a range runs, for Step Functions.

`esteira backfill` starts one execution per instant on AWS; the instants must be exactly those of
Airflow's own backfill of the same range (`airflow backfill create --from-date --to-date`), so the
two orchestrators fill the same partitions. Airflow plans a backfill with the DAG's timetable, from
the first instant at or after --from-date to the last at or before --to-date, keeping instants
already past; esteira's timetable (esteira.airflow.timetable) fires on esteira.instants' instants,
EventBridge Scheduler's, daylight saving included, and so does this planner.

tests/test_backfill.py holds this to Airflow's own planning of the real DAG, DST zones included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from esteira.instants import CronInstants
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
    now = now or datetime.now(UTC)
    instants = CronInstants(cron, timezone).between(earliest.astimezone(UTC), latest.astimezone(UTC))
    return [BackfillRun(instant) for instant in instants if instant < now]


__all__ = ["BackfillRun", "parse_bound", "plan_backfill"]
