"""esteira.instants: a cron in a zone fires on EventBridge Scheduler's instants — a wall-clock time
the spring-forward gap skips does not fire, one the fall-back overlap repeats fires once, at its
first occurrence — and Airflow's DAGs fire on the same (esteira.airflow.timetable)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from esteira.instants import CronInstants

ZONES = ["UTC", "America/New_York", "Europe/Lisbon", "America/Sao_Paulo", "Australia/Lord_Howe",
         "Asia/Kathmandu", "America/Santiago"]
CRONS = ["0 3 * * *", "30 2 * * *", "30 1 * * *", "0 * * * *", "*/20 * * * *", "15 */2 * * *", "0 1-3 * * *",
         "30 0 * * *", "0 0 * * 0", "45 1,2 * 3,4,9,10,11 *"]
WINDOWS = [datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC),
           datetime(2026, 9, 4, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 10, 30, tzinfo=UTC)]
SPAN = timedelta(days=4)


def matcher(cron: str) -> Callable[[datetime], bool]:
    """Does a wall-clock time match the cron (Vixie cron's rule: day-of-month OR day-of-week when
    both are restricted), from the field values croniter expands."""
    minutes, hours, doms, months, dows = (set(f) for f in croniter(cron).expanded)
    any_dom, any_dow = "*" in doms, "*" in dows

    def match(wall: datetime) -> bool:
        if wall.minute not in minutes or ("*" not in hours and wall.hour not in hours):
            return False
        if "*" not in months and wall.month not in months:
            return False
        dom_ok = any_dom or wall.day in doms
        dow = (wall.weekday() + 1) % 7
        dow_ok = any_dow or dow in dows or (dow == 0 and 7 in dows)
        return dom_ok and dow_ok if any_dom or any_dow else dom_ok or dow_ok

    return match


def local_minutes(zone: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime, bool]]:
    """(UTC minute, its wall-clock time, whether an earlier minute showed that wall time) for every
    minute. Only UTC -> local conversions: a time in the gap never shows up."""
    tz = ZoneInfo(zone)
    seen: set[datetime] = set()
    out = []
    minute = start
    while minute <= end:
        wall = minute.astimezone(tz).replace(tzinfo=None)
        out.append((minute, wall, wall in seen))
        seen.add(wall)
        minute += timedelta(minutes=1)
    return out


def eventbridge_oracle(cron: str, minutes: list[tuple[datetime, datetime, bool]]) -> list[datetime]:
    """It fires at a minute whose wall-clock time matches the cron, unless that wall time was
    already shown (a repeated time fires once); a skipped time never matches."""
    match = matcher(cron)
    return [minute for minute, wall, repeated in minutes if not repeated and match(wall)]


@pytest.mark.parametrize("zone", ZONES)
def test_the_instants_are_eventbridges_around_every_transition(zone: str) -> None:
    for start in WINDOWS:
        minutes = local_minutes(zone, start, start + SPAN)
        for cron in CRONS:
            ours = list(CronInstants(cron, zone).between(start, start + SPAN))
            assert ours == eventbridge_oracle(cron, minutes), (cron, start)


def test_new_york_skips_the_gap_and_fires_the_overlap_once() -> None:
    daily = CronInstants("30 2 * * *", "America/New_York")
    days = [i.isoformat() for i in daily.between(datetime(2026, 3, 7, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))]
    assert days == ["2026-03-07T07:30:00+00:00", "2026-03-09T06:30:00+00:00"]  # no 8 March: 02:30 did not exist
    hourly = CronInstants("0 * * * *", "America/New_York")
    hours = list(hourly.between(datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 8, tzinfo=UTC)))
    # 00:00 EDT, 01:00 EDT, (01:00 EST does not repeat), 02:00 EST, 03:00 EST
    assert [h.hour for h in hours] == [4, 5, 7, 8]


def test_before_and_after_are_strict_and_agree() -> None:
    instants = CronInstants("*/20 * * * *", "Europe/Lisbon")
    around = list(instants.between(datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 3, tzinfo=UTC)))
    for earlier, later in itertools.pairwise(around):
        assert instants.after(earlier) == later and instants.before(later) == earlier
        assert instants.fires_at(later) and not instants.fires_at(later + timedelta(minutes=1))
        assert instants.at_or_after(later) == later == instants.at_or_before(later)
