"""esteira's Airflow timetable: the cron instants EventBridge Scheduler fires, and whether Airflow fires them.

Two jobs Airflow's CronTriggerTimetable cannot do:

* fire on EventBridge's instants across daylight saving (esteira.instants: a gap time is skipped,
  an overlap time fires once), so a schedule runs on the same instants on both orchestrators;
* for a project whose schedule Step Functions owns, schedule nothing yet accept manual runs and
  backfills. `can_be_scheduled = False` is what keeps Airflow's scheduler from planning runs (as
  for `schedule=None`), while `periodic = True` keeps backfills open (Airflow 3's UI and REST API
  offer them only for periodic timetables) and they plan from the same cron. The DAG is therefore
  created unpaused: Airflow 3 does not start manual or backfill runs of a paused DAG.

A custom timetable must be registered by a plugin for the scheduler to deserialize it
(plugins/esteira_plugin.py; in the MWAA bundle's plugins.zip too). The class is the same on
Airflow 3.x and 2.10/2.11: both read `airflow.timetables.base.Timetable`.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable

from esteira.instants import CronInstants


class EsteiraTimetable(Timetable):
    periodic = True

    def __init__(self, cron: str, timezone: str, *, scheduled: bool = True) -> None:
        self.cron = cron
        self.timezone = timezone
        self.scheduled = scheduled
        self._instants = CronInstants(cron, timezone)
        owner = "" if scheduled else "; not fired by Airflow here (manual runs and backfills only)"
        self.description = f"{cron} in {timezone}, as EventBridge Scheduler fires it{owner}"

    # An attribute in Airflow 3's base class, a property in 2.x's: mypy, checking against 3.x, refuses a
    # read-only property over a writable attribute (esteira's timetables are never assigned one).
    @property
    def can_be_scheduled(self) -> bool:  # type: ignore[override]
        return self.scheduled

    @property
    def summary(self) -> str:
        return self.cron if self.scheduled else f"{self.cron} (backfills only)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EsteiraTimetable) and self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash((self.cron, self.timezone, self.scheduled))

    def serialize(self) -> dict[str, Any]:
        return {"cron": self.cron, "timezone": self.timezone, "scheduled": self.scheduled}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> EsteiraTimetable:
        return cls(data["cron"], data["timezone"], scheduled=data["scheduled"])

    def infer_manual_data_interval(self, *, run_after: pendulum.DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        """CronTriggerTimetable's rules (catchup, start and end dates) over EventBridge's instants.

        A backfill always asks with an end (`latest`); the scheduler asks with the DAG's end_date,
        which esteira never sets: so a Step-Functions-owned DAG answers backfills and nothing else.
        """
        if not self.scheduled and restriction.latest is None:
            return None
        instants = self._instants
        if restriction.catchup:
            if last_automated_data_interval is not None:
                following = instants.after(last_automated_data_interval.end)
            elif restriction.earliest is None:
                following = instants.at_or_after(pendulum.now("UTC"))
            else:
                following = instants.at_or_after(restriction.earliest)
        else:
            candidates = [instants.at_or_before(pendulum.now("UTC"))]
            if last_automated_data_interval is not None:
                candidates.append(instants.after(last_automated_data_interval.end))
            elif restriction.earliest is None:
                candidates.append(instants.at_or_after(pendulum.now("UTC")))
            if restriction.earliest is not None:
                candidates.append(instants.at_or_after(restriction.earliest))
            following = max(candidates)
        if restriction.latest is not None and restriction.latest < following:
            return None
        return DagRunInfo.exact(pendulum.instance(following))


__all__ = ["EsteiraTimetable"]
