"""Schedules: the EventBridge cron fires on exactly the instants the Unix cron fires on in Airflow.

Two independent evaluators are the oracle: croniter (what Airflow's CronTriggerTimetable runs)
reads the config's Unix cron, pyawscron reads the exported AWS expression; their next fire
times must be equal, for hand-picked crons and for crons that hypothesis writes.
"""

from __future__ import annotations

import datetime as dt

import pytest
from croniter import CroniterBadDateError, croniter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyawscron import AWSCron

from esteira.aws_cron import NotExpressible, to_aws_cron
from esteira.cron import normalise_cron

UTC = dt.UTC
FIRES = 25


def unix_fires(expr: str, start: dt.datetime, n: int = FIRES) -> list[dt.datetime]:
    it = croniter(expr, start)
    return [it.get_next(dt.datetime) for _ in range(n)]


def aws_fires(expr: str, start: dt.datetime, n: int = FIRES) -> list[dt.datetime]:
    inner = expr.removeprefix("cron(").removesuffix(")")
    return AWSCron.get_next_n_schedule(n, start, inner)


@pytest.mark.parametrize(("unix", "aws"), [
    ("0 3 * * *", "cron(0 3 * * ? *)"),                       # the seed's daily run
    ("30 4 * * MON-FRI", "cron(30 4 ? * 2-6 *)"),              # names, renumbered from SUN=1
    ("0 6 * * 0", "cron(0 6 ? * 1 *)"),                        # Sunday is 0 in Unix ...
    ("0 6 * * 7", "cron(0 6 ? * 1 *)"),                        # ... and 7 too
    ("0 6 * * 5-7", "cron(0 6 ? * 1,6,7 *)"),                  # a range through Sunday
    ("0 6 * * SAT,SUN", "cron(0 6 ? * 1,7 *)"),
    ("*/15 * * * *", "cron(0/15 * * * ? *)"),                  # steps
    ("5-59/10 */2 1,15 * *", "cron(5/10 0/2 1,15 * ? *)"),
    ("0 0 1 */3 *", "cron(0 0 1 1/3 ? *)"),
    ("0 9-17 * JAN-MAR 1-5", "cron(0 9-17 ? 1-3 2-6 *)"),
    ("0 3 1-31 * 1", "cron(0 3 * * ? *)"),                     # day-of-month written out: every day
    ("@daily", "cron(0 0 * * ? *)"),
    ("@weekly", "cron(0 0 ? * 1 *)"),
    ("0-29,31-59 0-11,13-23 1-14,16-31 * *", "cron(0-29,31-59 0-11,13-23 1-14,16-31 * ? *)"),  # ranges in lists
    ("0,5,10,11,12 * * * *", "cron(0,5,10-12 * * * ? *)"),    # a run of three becomes a range
])
def test_unix_cron_becomes_the_aws_cron_that_fires_on_the_same_instants(unix: str, aws: str) -> None:
    assert to_aws_cron(normalise_cron(unix)) == aws
    start = dt.datetime(2026, 11, 24, 17, 0, 30, tzinfo=UTC)
    assert aws_fires(aws, start) == unix_fires(normalise_cron(unix), start)


@pytest.mark.parametrize("unix", ["0 3 1 * MON", "0 0 1,15 * 5", "0 0 */2 * 1-5"])
def test_a_cron_restricting_both_day_fields_is_refused_not_approximated(unix: str) -> None:
    with pytest.raises(NotExpressible, match="fires when EITHER matches"):
        to_aws_cron(unix)
    with pytest.raises(ValueError, match="Restrict only one day field"):
        normalise_cron(unix)


# --- crons hypothesis writes ---------------------------------------------------------------

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def field(lo: int, hi: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    """One Unix cron field: '*', values, names, ranges, steps and lists of them."""
    def value(v: int) -> str:
        return names[v - lo] if names and v - lo < len(names) else str(v)

    number = st.integers(lo, hi)
    single = number.map(value)
    span = st.tuples(number, number).filter(lambda t: t[0] <= t[1]).map(lambda t: f"{value(t[0])}-{value(t[1])}")
    stepped = st.tuples(st.one_of(st.just("*"), span), st.integers(1, hi - lo + 1)).map(lambda t: f"{t[0]}/{t[1]}")
    part = st.one_of(single, span, stepped)
    return st.one_of(st.just("*"), st.lists(part, min_size=1, max_size=3).map(",".join))


UNIX_CRONS = st.tuples(
    field(0, 59), field(0, 23), field(1, 31), st.one_of(field(1, 12), field(1, 12, MONTHS)),
    st.one_of(field(0, 7), field(0, 6, DAYS)),
).map(" ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(unix=UNIX_CRONS, start=st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2031, 12, 31)))
def test_any_unix_cron_fires_on_the_same_instants_in_both_orchestrators(unix: str, start: dt.datetime) -> None:
    try:
        text = normalise_cron(unix)
    except ValueError as exc:
        # refused only for a reason a user can act on: both day fields restricted, or no such date
        if "never fires" in str(exc):
            assert not unix_fires_within_years(unix, 8), unix
            return
        assert "EITHER" in str(exc), (unix, exc)
        dom, dow = unix.split()[2], unix.split()[4]
        assert dom != "*" and dow != "*"
        return
    start = start.replace(second=30, microsecond=0, tzinfo=UTC)  # never on a fire time
    aws = to_aws_cron(text)
    try:
        expected = aws_fires(aws, start)
    except ValueError as exc:
        # pyawscron 1.0.7 cannot step over 29 February ("day is out of range for month"); that
        # date is covered by test_leap_day_fires_in_both below, not by weakening the oracle here
        assume("out of range for month" not in str(exc))
        raise
    assert expected == unix_fires(text, start), (unix, aws)


def unix_fires_within_years(unix: str, years: int) -> bool:
    try:
        croniter(unix, dt.datetime(2000, 1, 1), max_years_between_matches=years).get_next(dt.datetime)
    except CroniterBadDateError:
        return False
    return True


def test_leap_day_fires_in_both() -> None:
    assert to_aws_cron("0 12 29 2 *") == "cron(0 12 29 2 ? *)"
    fires = unix_fires("0 12 29 2 *", dt.datetime(2026, 1, 1, tzinfo=UTC), 2)
    assert fires == [dt.datetime(2028, 2, 29, 12, tzinfo=UTC), dt.datetime(2032, 2, 29, 12, tzinfo=UTC)]
    with pytest.raises(ValueError, match="day is out of range"):  # pyawscron's known bug: see NOTES
        aws_fires("cron(0 12 29 2 ? *)", dt.datetime(2026, 1, 1, tzinfo=UTC), 2)
