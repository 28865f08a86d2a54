"""Unix cron -> EventBridge `cron(...)`, firing on exactly the instants croniter (Airflow) fires on.

Translating the syntax field by field is where converters go wrong (day-of-week renumbering
inside ranges and steps, `7` as Sunday, names, the `?` rule). Instead each field is expanded
by croniter itself, the evaluator Airflow's timetable uses, into the set of values it matches,
and that set is written back in AWS syntax. The two can only differ where the calendars
differ, which `to_aws_cron` refuses:

* Unix cron ORs day-of-month and day-of-week when both are restricted; an AWS expression must
  leave one of them `?`. Two schedules would express the union but start two runs on days that
  match both (a run writes its date's partition: two at once race), so that cron is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from croniter import croniter

# (low, high) of each Unix field as croniter expands it; AWS uses the same ranges except
# day-of-week, which AWS numbers 1-7 from Sunday (Unix: 0-6 from Sunday).
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_DOW_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


class NotExpressible(ValueError):
    """The Unix cron has no exact EventBridge equivalent."""


def to_aws_cron(unix: str) -> str:
    """The EventBridge Scheduler expression, `cron(min hour dom month dow year)`, of a 5-field cron."""
    fields, nth = croniter.expand(unix)
    if nth:  # pragma: no cover - esteira.cron refuses '#' before it gets here
        raise NotExpressible(f"{unix!r}: '#' is not supported")
    minute, hour, dom, month, dow = (_values(f, lo, hi) for f, (lo, hi) in zip(fields, _BOUNDS, strict=True))
    dow_all = dow is None
    if fields[2] != ["*"] and fields[4] != ["*"]:
        # croniter (like Vixie cron) ORs the two day fields when neither expands to '*'
        if dom is None:  # written out as 1-31: every day matches
            dow_all = True
        elif dow is None:  # pragma: no cover - croniter expands a full day-of-week to '*'
            dom = None
        else:
            days = ",".join(str(d) for d in dom)
            weekdays = ",".join(_DOW_NAMES[d] for d in dow)
            raise NotExpressible(
                f"{unix!r} restricts both day-of-month ({days}) and day-of-week ({weekdays}); "
                "Unix cron then fires when EITHER matches, which one EventBridge schedule cannot "
                "express, and two schedules would start two runs on days that match both. "
                "Restrict only one day field and leave the other '*'"
            )
    parts = [
        _render(minute, 59),
        _render(hour, 23),
        "?" if not dow_all else _render(dom, 31),
        _render(month, 12),
        "?" if dow_all or dow is None else _render([d + 1 for d in dow], 7),  # dow is None only when dow_all
        "*",
    ]
    return f"cron({' '.join(parts)})"


def _values(field: Sequence[int | str], lo: int, hi: int) -> list[int] | None:
    """Sorted values a field matches, or None when it matches every value ('*')."""
    if field == ["*"]:
        return None
    values = sorted({int(v) for v in field})
    if lo == 0 and hi == 6:  # croniter may keep Sunday as 7
        values = sorted({v % 7 for v in values})
    return None if values == list(range(lo, hi + 1)) else values


def _render(values: list[int] | None, hi: int) -> str:
    """Shortest obvious AWS form: '*', 'a', 'a-b', 'start/step', or a comma list whose runs of three
    or more values are ranges ('0-29,31-59'), which keeps the expression within AWS's 256 characters."""
    if values is None:
        return "*"
    if len(values) == 1:
        return str(values[0])
    if values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    step = values[1] - values[0]
    if len(values) > 2 and values == list(range(values[0], hi + 1, step)):
        return f"{values[0]}/{step}"
    parts, run = [], [values[0]]
    for value in values[1:]:
        if value == run[-1] + 1:
            run.append(value)
            continue
        parts.extend(_run(run))
        run = [value]
    parts.extend(_run(run))
    return ",".join(parts)


def _run(run: list[int]) -> list[str]:
    return [f"{run[0]}-{run[-1]}"] if len(run) >= 3 else [str(v) for v in run]
