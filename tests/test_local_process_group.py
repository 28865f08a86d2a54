"""A local step ends with all of its processes: `ps` shows none of them after a timeout or after
the step's program returns, even those that ignore SIGTERM. Run through Airflow's dag.test()."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_bad_input import BASE

from esteira.airflow.factory import build_all
from esteira.airflow.local_operator import LocalProcessOperator
from esteira.settings import Settings

# The step's program: starts a child that ignores SIGTERM (and holds the output pipe), writes
# both pids, then either returns at once or sleeps past the step's timeout, ignoring SIGTERM too.
SPAWN = textwrap.dedent("""\
    import signal, subprocess, sys, time
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    child = subprocess.Popen([sys.executable, "-c", stubborn])
    open(sys.argv[2], "w").write(f"{child.pid}\\n")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.argv[1] == "hang":
        time.sleep(600)
    """)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _project(write_project: Callable[[str, str], Path], mode: str, pidfile: Path) -> Path:
    config = BASE.replace("project_name: demo", "project_name: spawner")
    config = config.replace('command: "python steps/extract.py"',
                            f'command: ["python", "spawn.py", "{mode}", "{pidfile}"]\n        timeout_seconds: 3')
    config = config.replace('retries: 2', 'retries: 0')
    file = write_project("spawner", config)
    (file.parent / "spawn.py").write_text(SPAWN)
    return file.parent.parent


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(("mode", "state"), [("hang", "failed"), ("return", "success")])
def test_no_process_of_a_step_outlives_it(write_project: Callable[[str, str], Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, mode: str, state: str) -> None:
    pidfile = tmp_path / "pids"
    projects = _project(write_project, mode, pidfile)
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("ESTEIRA_BACKEND", "local")
    monkeypatch.setattr(LocalProcessOperator, "kill_grace_seconds", 1.0)
    dag = build_all(Settings.from_environ())["spawner"]
    started = datetime.now(UTC)
    run = dag.test(logical_date=datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    took = (datetime.now(UTC) - started).total_seconds()
    pids = [int(line) for line in pidfile.read_text().split()]
    leftovers = [pid for pid in pids if _alive(pid)]
    for pid in leftovers:  # never leave a test's process behind, even when the test fails
        os.kill(pid, 9)
    assert leftovers == []
    first = next(ti for ti in run.get_task_instances() if ti.task_id == "extract_features")
    assert first.state == state  # "hang": the 3 s timeout ended the step, not the program
    assert took < 60
