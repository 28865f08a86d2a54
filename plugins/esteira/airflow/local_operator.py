"""Run a step as a process on this machine: the same argv and environment a container gets.

No shell is involved (argv goes to the OS as is). The process starts from a small, clean
environment, like a container, rather than inheriting the Airflow worker's variables. It runs
in a session of its own, and the step ends with its process group, as a container ends with
its processes: on success, failure, timeout or kill, whatever is left of the group gets SIGTERM,
then SIGKILL after `kill_grace_seconds`, and the task waits until none is left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from esteira.airflow.compat import BaseOperator, Context
from esteira.airflow.process_group import stop_group
from esteira.airflow.run_failures import FAILURE_KEY
from esteira.ecs_failures import APPLICATION
from esteira.notifications import failure_record

# Variables a process needs to find programs and write temp files; nothing else leaks in.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "VIRTUAL_ENV", "SYSTEMROOT")


class StepFailed(RuntimeError):
    """The step's process exited non-zero: the task fails (and is retried) like an ECS task would."""


class LocalProcessOperator(BaseOperator):
    """Runs `command` in `cwd` with `env` (templated); fails when the process exits non-zero."""

    template_fields: Sequence[str] = ("env",)
    ui_color = "#e8f4ea"
    kill_grace_seconds: float = 10.0  # between SIGTERM and SIGKILL, as `docker stop` and ECS (30 s) give

    def __init__(self, *, command: Sequence[str], env: dict[str, str], cwd: str,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = list(command)
        self.env = env
        self.cwd = cwd

    def argv(self) -> list[str]:
        """`python` in a config means the image's interpreter; here, the one running Airflow."""
        argv = list(self.command)
        if argv[0] in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
            argv[0] = sys.executable
        return argv

    def execute(self, context: Context) -> None:
        base = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
        argv = self.argv()
        self.log.info("running %s in %s", argv, self.cwd)
        proc = subprocess.Popen(argv, cwd=self.cwd, env={**base, **self.env},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)
        self._pgid = proc.pid  # a new session: its process group id is the child's pid
        # The output is relayed by a thread so that the step ends when its process does, even if
        # a process it left behind still holds the pipe open.
        relay = threading.Thread(target=self._relay, args=(proc,), name=f"{self.task_id}-output", daemon=True)
        relay.start()
        try:
            code = proc.wait()
        finally:  # success, failure, timeout (AirflowTaskTimeout lands here) or kill
            self._stop()
            proc.poll()  # reap the child if it ended after a timeout interrupted wait()
            relay.join(timeout=5)
        if code != 0:  # the record the failure notification lists (no ECS here: no stop code, no log link)
            context["ti"].xcom_push(key=FAILURE_KEY, value=failure_record(self.task_id, APPLICATION, exit_code=code))
            raise StepFailed(f"step {self.task_id!r} exited with code {code}: {' '.join(argv)}")

    def on_kill(self) -> None:
        """Airflow calls this on timeout and when the task is killed (UI, SIGTERM to the runner)."""
        self._stop()

    def _relay(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log.info("%s", line.rstrip("\n"))

    def _stop(self) -> None:
        pgid = getattr(self, "_pgid", None)
        if pgid is None:
            return
        left = stop_group(pgid, self.kill_grace_seconds)
        if left:
            self.log.warning("stopped %d process(es) of step %r still running: %s", len(left), self.task_id,
                             ", ".join(map(str, left)))
