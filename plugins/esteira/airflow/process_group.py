"""Stop every process of a step, not only the one the operator started.

A step runs in its own session (so its own process group). Signalling the direct child alone
leaves its children behind as orphans when it ends first or they ignore SIGTERM; a process
group is what a container's PID namespace is to ECS. No library does this for a group (psutil
walks the tree of parents, which an orphan has already left), hence these few lines.

A process that starts a session of its own (setsid, a daemon) leaves the group and is out of
reach here, as it would be of a shell's job control.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

_PROC = Path("/proc")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the group; [] when none is left.

    Zombies are left out: they hold no resources and are reaped by whoever adopted them.
    Without /proc (macOS) any answer to signal 0 counts as alive.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:  # pragma: no cover - a member changed user; it still exists
        pass
    if not _PROC.is_dir():  # pragma: no cover - Linux has /proc
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended while we looked
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def wait_group(pgid: int, seconds: float) -> bool:
    """True once no live process of the group is left; False if some still are after `seconds`."""
    deadline = time.monotonic() + seconds
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_group(pgid: int, grace_seconds: float) -> list[int]:
    """SIGTERM the whole group, SIGKILL what is left after the grace period, wait for the end.

    Returns the processes that were still alive when this was called (for the task log).
    """
    alive = group_members(pgid)
    if not alive:
        return []
    _signal(pgid, signal.SIGTERM)
    if not wait_group(pgid, grace_seconds):
        _signal(pgid, signal.SIGKILL)
        wait_group(pgid, 60)  # SIGKILL cannot be ignored; only an uninterruptible sleep delays it
    return alive


def _signal(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
