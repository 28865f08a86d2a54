"""A cache of compiled projects on local disk, keyed by the content that decides the result.

Airflow's DAG processor re-parses the DAG folder every 30 s; without this cache every parse
re-reads, re-validates and re-plans every project. The key is a sha256 of everything the
result depends on (the config's bytes, environments.yaml's bytes, the settings, esteira's own code
and the time-zone database), so an entry can only ever be served for exactly the inputs it was
computed from: a changed byte anywhere is a different key, never a stale hit. Writers publish an
entry with an atomic rename, so a concurrent reader sees a whole entry or none; an unreadable entry
is a miss. Hand-written: no library keys a cache on file contents and code together.

Entries are JSON (never pickle: reading one can never run code), under a folder only this user
may write; a folder anyone else could write is not used at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import zoneinfo
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import esteira

log = logging.getLogger("esteira")
PACKAGE_DIR = Path(esteira.__file__).resolve().parent


class CompileCache:
    """{key: JSON value} on disk; `root` None means no caching (every get misses, puts are dropped)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root if root is not None and _usable(root) else None

    def get(self, slot: str, key: str) -> Any | None:
        """The value stored for `key`, or None. `slot` names what the key is for (one project)."""
        if self.root is None:
            return None
        try:
            entry = json.loads((self._slot_dir(slot) / f"{key}.json").read_bytes())
        except (OSError, ValueError):  # missing, or half a file from a crashed writer: a miss
            return None
        return entry["value"] if isinstance(entry, dict) and entry.get("key") == key else None

    def put(self, slot: str, key: str, value: Any) -> None:
        """Store `value` (JSON-able) for `key`; the slot's older entries go. Best effort: a full or
        read-only disk only costs the next parse a recompile."""
        if self.root is None:
            return
        folder = self._slot_dir(slot)
        data = json.dumps({"key": key, "value": value}, separators=(",", ":")).encode()
        tmp: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
            os.replace(tmp, folder / f"{key}.json")
        except OSError as exc:
            log.debug("esteira: compile cache not written (%s)", exc)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return
        for old in folder.glob("*.json"):  # the slot's earlier inputs: never read again
            if old.name != f"{key}.json" and not old.name.startswith(".tmp-"):
                with contextlib.suppress(OSError):
                    old.unlink()

    def _slot_dir(self, slot: str) -> Path:
        assert self.root is not None
        return self.root / hashlib.sha256(slot.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _usable(root: Path) -> bool:
    """Create the folder (0700) if needed; refuse one that another user could write into."""
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = root.stat()
    except OSError as exc:
        log.warning("esteira: compile cache %s not usable (%s); compiling every project without it", root, exc)
        return False
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning("esteira: compile cache %s is not owned by this user or is writable by others; compiling "
                    "every project without it: remove it or set ESTEIRA_CACHE_DIR", root)
        return False
    return True


def cache_key(*parts: str | bytes | None) -> str:
    """sha256 over the parts, each length-prefixed so that no two part lists collide."""
    digest = hashlib.sha256()
    for part in parts:
        raw = b"\xff" if part is None else part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()


@cache
def code_fingerprint() -> str:
    """esteira's version and every file of the installed package (path, size, mtime), plus the
    time-zone databases validation reads: a changed line of esteira, even in an editable checkout
    with the same version, or a tzdata update is a new key."""
    files: list[str] = [esteira.__version__]
    for folder, _, names in sorted(os.walk(PACKAGE_DIR)):
        if "__pycache__" in folder:
            continue
        for name in sorted(names):
            files.append(_stamp(Path(folder) / name))
    for tzpath in zoneinfo.TZPATH:
        files.append(_stamp(Path(tzpath) / "tzdata.zi"))
    with contextlib.suppress(ImportError):  # the PyPI time zones, used when the system has none
        files.append(_stamp(Path(str(resources.files("tzdata").joinpath("zoneinfo", "tzdata.zi")))))
    return cache_key(*files)


def _stamp(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return f"{path}:-"
    return f"{path}:{info.st_size}:{info.st_mtime_ns}"
