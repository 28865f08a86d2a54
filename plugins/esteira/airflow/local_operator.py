"""Run a step as a process on this machine: the same argv and environment a container gets.

No shell is involved (argv goes to the OS as is). The process starts from a small, clean
environment, like a container, rather than inheriting the Airflow worker's variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from esteira.airflow.compat import BaseOperator, Context

# Variables a process needs to find programs and write temp files; nothing else leaks in.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "VIRTUAL_ENV", "SYSTEMROOT")


class StepFailed(RuntimeError):
    """The step's process exited non-zero: the task fails (and is retried) like an ECS task would."""


class LocalProcessOperator(BaseOperator):
    """Runs `command` in `cwd` with `env` (templated); fails when the process exits non-zero."""

    template_fields: Sequence[str] = ("env",)
    ui_color = "#e8f4ea"

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
                                start_new_session=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.info("%s", line.rstrip("\n"))
            code = proc.wait()
        except BaseException:  # timeout or kill of the task: never leave the process behind
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        if code != 0:
            raise StepFailed(f"step {self.task_id!r} exited with code {code}: {' '.join(argv)}")
