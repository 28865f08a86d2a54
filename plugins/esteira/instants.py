"""When a schedule fires: EventBridge Scheduler's rules, which esteira's Airflow timetable follows too.

A cron in a time zone names wall-clock times. EventBridge Scheduler turns them into instants with
two documented rules for daylight saving (AWS knowledge center, "eventbridge-scheduler-adjust-dst"):
a time that does not exist (the spring-forward gap) is skipped, and a time that exists twice (the
fall-back overlap) fires once — here at its first occurrence, the reading of "runs only once and
doesn't repeat its invocation". Airflow's own CronTriggerTimetable moves a gap time forward and
fires an hourly cron twice in the overlap, so esteira's DAGs use a timetable built on this module
(esteira.airflow.timetable), and `esteira backfill` plans with it: both orchestrators fire on the
same instants, and the Airflow side needs no AWS to prove it.

croniter walks the wall-clock times; zoneinfo decides which of them exist. Written here because no
library applies EventBridge's rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

# Wider than any UTC offset change (2 h at most, Antarctica/Troll): a wall-clock walk that starts
# this far on the other side of an instant cannot miss a fire time around a transition.
_PAD = timedelta(hours=3)


class CronInstants:
    """The instants (aware, UTC) at which a 5-field cron fires in an IANA zone."""

    def __init__(self, cron: str, timezone: str) -> None:
        self.cron = cron
        self.timezone = timezone
        self.zone = _zone(timezone)

    def instant_of(self, wall: datetime) -> datetime | None:
        """The instant of a naive wall-clock time: None in a gap, the first occurrence in an overlap."""
        aware = wall.replace(tzinfo=self.zone, fold=0)
        instant = aware.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) != wall:
            return None  # the clock jumped over this time
        return instant

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def _pad(self, instant: datetime) -> timedelta:
        """No detour unless an offset change is near (the common case costs one croniter step)."""
        before = (instant - _PAD).astimezone(self.zone).utcoffset()
        after = (instant + _PAD).astimezone(self.zone).utcoffset()
        return timedelta(0) if before == after else _PAD

    def after(self, instant: datetime) -> datetime:
        """The first fire instant strictly after `instant`."""
        walk = croniter(self.cron, self._wall(instant) - self._pad(instant))
        while True:
            found = self.instant_of(walk.get_next(datetime))
            if found is not None and found > instant:
                return found

    def before(self, instant: datetime) -> datetime:
        """The last fire instant strictly before `instant`."""
        walk = croniter(self.cron, self._wall(instant) + self._pad(instant))
        while True:
            found = self.instant_of(walk.get_prev(datetime))
            if found is not None and found < instant:
                return found

    def at_or_after(self, instant: datetime) -> datetime:
        return self.after(instant - timedelta(microseconds=1))

    def at_or_before(self, instant: datetime) -> datetime:
        return self.before(instant + timedelta(microseconds=1))

    def fires_at(self, instant: datetime) -> bool:
        return self.at_or_after(instant) == instant

    def between(self, earliest: datetime, latest: datetime) -> Iterator[datetime]:
        """Every fire instant in [earliest, latest], oldest first."""
        instant = self.at_or_after(earliest)
        while instant <= latest:
            yield instant
            instant = self.after(instant)


@lru_cache(maxsize=64)
def _zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)


__all__ = ["CronInstants"]
