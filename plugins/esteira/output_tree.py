"""The export's output tree: written one project at a time, all of its files or none, and checked
for drift, stray and stale files.

Each project's files are first written in full as temp files beside their targets (a failure or
SIGINT there removes them and leaves the old files untouched), then renamed over the targets
with SIGINT and SIGTERM held back, so an interrupted export leaves each project either wholly
old or wholly new. Files get the user's umask, as any file the user writes would.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".esteira-tmp"
# a project's files in <out>/<env>/<project>/ (esteira.compile renders them)
STATE_MACHINE_FILE = "state_machine.asl.json"
SCHEDULES_FILE = "schedules.json"
STACK_FILE = "stack.cfn.json"
_HELD = {signal.SIGINT, signal.SIGTERM}


class OutputError(Exception):
    """The output tree cannot be written (a file where a folder must be, read-only, disk full)."""


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT/SIGTERM wait until the block ends (delivered then), so the renames finish together."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - POSIX has it
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def write_project(files: dict[Path, str]) -> list[Path]:
    """Write one project's files (all in one folder or a few); returns the paths written."""
    mode = 0o666 & ~_umask()
    for path in files:  # what would fail a rename must fail before any file is replaced
        if path.is_dir() and not path.is_symlink():
            raise OutputError(f"cannot write {path}: a folder is in the way; move it")
    temps: dict[Path, str] = {}
    try:
        for path, text in files.items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
            temps[path] = name
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as stream:
                    stream.write(text)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.chmod(name, mode)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        with _signals_held():
            for path, name in temps.items():
                os.replace(name, path)
    except BaseException:
        for name in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(name)
        raise
    return list(files)


def check(files: dict[Path, str], folders: list[Path], stale_root: Path | None, known: set[str]) -> int:
    """Print what differs from `files`; returns how many paths drifted.

    `folders`: the projects' output folders, where a file esteira would not write is stray (a
    leftover temp file, a file of an older esteira). `stale_root`: with --all, the env folder,
    where a folder of a project that no longer exists (not in `known`) is stale.
    """
    drift = 0
    for path, text in files.items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            print(f"up to date  {path}")
            continue
        drift += 1
        if current is None:
            print(f"missing     {path}")
        else:
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"{path} (on disk)", tofile=f"{path} (from config)"))
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path not in files:
                    drift += 1
                    print(f"stray       {path} (esteira does not write it; remove it)")
    if stale_root is not None and stale_root.is_dir():
        for path in sorted(stale_root.iterdir()):
            if path.name not in known:
                drift += 1
                print(f"stale       {path} (no project of that name; remove it)")
    return drift
