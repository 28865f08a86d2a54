"""Unix cron as the config contract: exactly five fields, checked by croniter.

croniter accepts more than a Unix cron (seconds and year fields, hashed `H` values) that
neither Airflow's timetable nor EventBridge would read the same way, so those are refused, as
is a cron that EventBridge Scheduler cannot fire on exactly the same instants (both orchestrators
run the same schedule, so that is a config error, not an export error).
"""

from __future__ import annotations

import re
from datetime import datetime

from croniter import CroniterBadDateError, croniter

from esteira.aws_cron import NotExpressible, to_aws_cron

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
FIELDS = "minute hour day-of-month month day-of-week"
_NEVER_CHECK_FROM = datetime(2000, 1, 1)
_MAX_YEARS = 8  # 29 February comes every 4 years (8 spans a skipped leap year, as 2100)
_NAMES = re.compile(r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|sun|mon|tue|wed|thu|fri|sat)",
                    re.IGNORECASE)


def normalise_cron(expr: str) -> str:
    """The 5-field form of a cron (aliases expanded, spaces collapsed), or ValueError."""
    text = " ".join(expr.split())
    text = ALIASES.get(text, text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r} has {len(fields)} field(s); a Unix cron has 5 ({FIELDS}), "
            f"e.g. '0 3 * * *', or one of {', '.join(ALIASES)}"
        )
    if re.search(r"[A-Za-z#?]", _NAMES.sub("", text)):
        raise ValueError(f"{expr!r} uses syntax that is not standard Unix cron (H, L, W, #, ?)")
    if not croniter.is_valid(text):
        raise ValueError(f"{expr!r} is not a valid cron expression ({FIELDS})")
    try:
        to_aws_cron(text)
    except NotExpressible as exc:
        raise ValueError(str(exc)) from None
    try:  # '0 0 31 4 *' is valid syntax but there is no 31 April: it would never run
        croniter(text, _NEVER_CHECK_FROM, max_years_between_matches=_MAX_YEARS).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{expr!r} never fires (no such date in {_MAX_YEARS} years); check the "
                         "day-of-month and month fields") from None
    return text
