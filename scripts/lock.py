"""Regenerate, or check, the hash-pinned locks the environments install from.

    python scripts/lock.py           # `make lock`: regenerate every lock (needs the package index)
    python scripts/lock.py --check   # offline: exit 1 when a lock is older than its inputs

requirements*.txt name what each environment needs and constraints*.txt pin every version (our own
Airflow-style constraints); a lock is their resolution by `uv pip compile --generate-hashes` with the
sha256 of every file pip may install, so `pip install --require-hashes -r <lock>` installs those bytes
or nothing. uv is pinned in requirements-dev.txt, so the tool that resolves is itself pinned.

Each lock's header records a sha256 of its inputs (the files and the compile options below). The
check recomputes it without the network (tests/test_packaging.py runs it): an input edited without
`make lock` fails CI instead of installing something other than what the inputs say.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The machines esteira's environments run on: Debian's CPython 3.11 on x86_64 (CI's python:3.11-bookworm).
# A patch release is named because some wheels require one (soupsieve 4.1.3: Python >= 3.11.5).
COMPILE_OPTIONS = ("--generate-hashes", "--python-version", "3.11.7", "--python-platform", "x86_64-unknown-linux-gnu",
                   "--no-config", "--no-header")
DIGEST_LINE = re.compile(r"^# inputs-sha256: ([0-9a-f]{64})$", re.MULTILINE)


@dataclass(frozen=True)
class Lock:
    path: str
    environment: str
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        return (*self.requirements, *self.constraints)


# In order: the e2e lock is constrained by the main one, as both install into .venv/.
LOCKS = (
    Lock("requirements.lock", ".venv/ (Airflow 3.3; `make setup`)",
         ("requirements.txt", "requirements-dev.txt"), ("constraints.txt",)),
    Lock("requirements-e2e.lock", ".venv/, on top of requirements.lock (scripts/setup-e2e.sh)",
         ("requirements-e2e.txt",), ("constraints.txt", "requirements.lock")),
    Lock("requirements-airflow2.lock", ".venv-airflow2/ (Airflow 2.11; scripts/setup-airflow2.sh)",
         ("requirements-airflow2.txt",), ("constraints-airflow2.txt",)),
)


def inputs_digest(lock: Lock, root: Path = REPO) -> str:
    """sha256 over the lock's input files (name and bytes) and the compile options."""
    digest = hashlib.sha256(" ".join(COMPILE_OPTIONS).encode() + b"\n")
    for name in lock.inputs:
        digest.update(f"{name}\0{hashlib.sha256((root / name).read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def recorded_digest(lock: Lock, root: Path = REPO) -> str | None:
    """The inputs digest the lock's header records, None when the lock or its header is missing."""
    path = root / lock.path
    match = DIGEST_LINE.search(path.read_text()) if path.is_file() else None
    return match[1] if match else None


def stale(root: Path = REPO) -> list[str]:
    """The locks whose header does not match their inputs now (each with the inputs to blame)."""
    return [f"{lock.path} (inputs: {', '.join(lock.inputs)})" for lock in LOCKS
            if recorded_digest(lock, root) != inputs_digest(lock, root)]


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"  # the pinned one, in .venv
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if not found:
        sys.exit("lock: uv not found; run `make setup` (requirements-dev.txt pins it)")
    return found


def compile_lock(lock: Lock, uv: str) -> None:
    """Resolve the lock's inputs with uv and write it with our header, atomically."""
    command = ["uv", "pip", "compile", *COMPILE_OPTIONS,
               *(arg for name in lock.constraints for arg in ("-c", name)), *lock.requirements]
    out = subprocess.run([uv, *command[1:], "--quiet"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    header = (f"# {lock.path}: {lock.environment}, every package pinned with the sha256 of each of its files.\n"
              f"# Do not edit: `make lock` regenerates it (scripts/lock.py) with\n#    {' '.join(command)}\n"
              f"# inputs-sha256: {inputs_digest(lock)}\n")
    with tempfile.NamedTemporaryFile("w", dir=REPO, prefix=f".{lock.path}.", delete=False) as tmp:
        tmp.write(header + out)
    os.replace(tmp.name, REPO / lock.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the hash-pinned locks (or --check them).")
    parser.add_argument("--check", action="store_true", help="offline: exit 1 when a lock is older than its inputs")
    if parser.parse_args(argv).check:
        bad = stale()
        for line in bad:
            print(f"lock: {line} is older than its inputs; run `make lock`", file=sys.stderr)
        return 1 if bad else 0
    uv = _uv()
    for lock in LOCKS:
        compile_lock(lock, uv)
        print(f"lock: wrote {lock.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
