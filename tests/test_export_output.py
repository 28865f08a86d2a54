"""The export's output tree: a project's files all change or none do, I/O problems are one clear
line with exit 3 (never the drift code 1, never a traceback), files follow the user's umask, and
`--check` reports stray and stale files as drift."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECTS
from esteira.output_tree import TEMP_SUFFIX, OutputError, write_project

FILES = ("state_machine.asl.json", "schedules.json", "stack.cfn.json")


def export(*args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asl_export", "--projects-dir", str(PROJECTS), *args],
                          capture_output=True, text=True, timeout=120, umask=umask)


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def test_files_follow_the_users_umask(tmp_path: Path) -> None:
    done = export("recsys", "--out", str(tmp_path), umask=0o027)
    assert done.returncode == 0, done.stderr
    for name in FILES:
        assert (tmp_path / "dev" / "recsys" / name).stat().st_mode & 0o777 == 0o640


def test_an_out_that_is_a_file_is_exit_3_with_the_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    done = export("recsys", "--out", str(out))
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert f"cannot write {out}/dev/recsys/" in done.stderr
    assert out.read_text() == "not a folder"


def test_a_folder_in_the_way_changes_none_of_the_projects_files(tmp_path: Path) -> None:
    assert export("recsys", "--out", str(tmp_path), "--env", "dev").returncode == 0
    folder = tmp_path / "dev" / "recsys"
    before = {name: (folder / name).read_text() for name in FILES}
    (folder / "stack.cfn.json").unlink()
    (folder / "stack.cfn.json").mkdir()
    os.utime(folder / "schedules.json", (0, 0))
    done = export("recsys", "--out", str(tmp_path), "--env", "dev")
    assert done.returncode == 3 and "a folder is in the way" in done.stderr
    assert (folder / "schedules.json").stat().st_mtime == 0  # untouched
    assert (folder / "state_machine.asl.json").read_text() == before["state_machine.asl.json"]
    assert temps(tmp_path) == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failure_mid_project_leaves_the_old_files_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException,
) -> None:
    files = {tmp_path / name: f"new {name}\n" for name in FILES}
    for path in files:
        path.write_text("old\n")
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the second file of the project: disk full, or Ctrl-C
            raise failure

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises((OutputError, KeyboardInterrupt)) as info:
        write_project(files)
    if isinstance(failure, OSError):
        assert "No space left on device" in str(info.value) and str(tmp_path / FILES[1]) in str(info.value)
    assert {path.read_text() for path in files} == {"old\n"}
    assert temps(tmp_path) == []


def test_check_reports_stray_and_stale_files_as_drift(tmp_path: Path) -> None:
    assert export("--all", "--out", str(tmp_path)).returncode == 0
    assert export("--all", "--out", str(tmp_path), "--check").returncode == 0
    stray = tmp_path / "dev" / "recsys" / f".stack.cfn.json.abc{TEMP_SUFFIX}"
    stray.write_text("{}")
    stale = tmp_path / "dev" / "retired_project"
    stale.mkdir()
    done = export("--all", "--out", str(tmp_path), "--check")
    assert done.returncode == 1
    assert f"stray       {stray}" in done.stdout
    assert f"stale       {stale}" in done.stdout
    named = export("recsys", "--out", str(tmp_path), "--check")  # one project: its own folder only
    assert named.returncode == 1 and "stray" in named.stdout and "stale" not in named.stdout
