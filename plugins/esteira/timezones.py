"""Time zone names both orchestrators read the same way: the canonical IANA names.

Airflow (pendulum) takes any name the tz database knows, old aliases included ("US/Eastern",
"Brazil/East"); EventBridge Scheduler documents canonical IANA names. An alias is refused with
the canonical name it stands for, read from the tz database's own source (tzdata.zi: `Z` lines
are zones, `L target alias` lines are links), which the pinned `tzdata` package ships.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

ALWAYS = frozenset({"UTC"})  # a link to Etc/UTC that every scheduler takes, and our default


@cache
def _zones_and_links() -> tuple[frozenset[str], dict[str, str]]:
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "tzdata.zi").read_text()
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - tzdata is pinned
        return frozenset(), {}
    zones, links = set(), {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "Z":
            zones.add(parts[1])
        elif len(parts) >= 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    return frozenset(zones), links


def alias_target(name: str) -> str | None:
    """The canonical zone `name` is an old alias of, or None when `name` is canonical (or unknown)."""
    if name in ALWAYS:
        return None
    zones, links = _zones_and_links()
    if not zones or name in zones:
        return None
    return links.get(name)
