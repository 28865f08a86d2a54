"""What every step shares: the run's identity from the environment, expected failures, the marker.

A step is a small program run by an orchestrator that only sees its exit code and its log,
so an expected failure (bad input data, MLflow unreachable, a missing variable) ends the
process with a distinct exit code and ONE line on stderr that says what is wrong; only a bug
shows a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ml_jobs.errors import JobError, MlflowUnavailable, UsageError
from ml_jobs.storage import Partition, partition

# Variables a marker records (what the step saw); never anything that may hold a secret.
_RECORDED = ("ENV", "RUN_DATE", "RUN_ID", "DATA_ROOT", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL",
             "MLFLOW_EXPERIMENT_NAME")
_SECRET = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL|_KEY$|PRIVATE", re.IGNORECASE)


@dataclass(frozen=True)
class StepContext:
    """One step of one run: who it is, which date it works on, where things are."""

    project: str  # MLFLOW_EXPERIMENT_NAME: the experiment, the registered model, the data folder
    step: str
    env: str
    run_date: str  # ISO 8601 UTC, the orchestrator's logical date
    day: date  # the partition: the run date's calendar day
    run_id: str
    data_root: str
    tracking_uri: str

    @classmethod
    def from_environ(cls, step: str, environ: Mapping[str, str] | None = None) -> StepContext:
        environ = os.environ if environ is None else environ
        needed = ("RUN_DATE", "RUN_ID", "DATA_ROOT", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI")
        missing = [name for name in needed if not environ.get(name)]
        if missing:
            raise UsageError(f"missing environment variable(s) {', '.join(missing)} "
                             "(esteira sets them for every step)")
        return cls(project=environ["MLFLOW_EXPERIMENT_NAME"], step=step, env=environ.get("ENV", "local"),
                   run_date=environ["RUN_DATE"], day=parse_run_date(environ["RUN_DATE"]),
                   run_id=environ["RUN_ID"], data_root=environ["DATA_ROOT"],
                   tracking_uri=environ["MLFLOW_TRACKING_URI"])

    @property
    def as_of(self) -> datetime:
        """RUN_DATE as an instant: what "champion as of the run date" compares against."""
        return parse_instant(self.run_date)

    @property
    def partition(self) -> Partition:
        """DATA_ROOT/<project>/<YYYY-MM-DD>: a re-run of this date rewrites this folder only."""
        return partition(self.data_root, self.project, self.day)

    def tags(self) -> dict[str, str]:
        """What an MLflow run or model version says about where it came from."""
        return {"esteira.project": self.project, "esteira.step": self.step, "esteira.env": self.env,
                "esteira.run_date": self.run_date, "esteira.run_id": self.run_id,
                "esteira.git_version": git_version()}


def parse_run_date(value: str) -> date:
    """RUN_DATE is ISO 8601 (`2026-11-24T03:00:00Z`); its calendar day in UTC names the partition."""
    return parse_instant(value, what="RUN_DATE").date()


def parse_instant(value: str, *, what: str = "RUN_DATE") -> datetime:
    """An ISO 8601 date-time as an aware UTC instant (naive means UTC), so instants written in
    different forms (`Z`, `+00:00`, other offsets) compare correctly."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"{what}={value!r} is not an ISO 8601 date-time like 2026-11-24T03:00:00Z") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def format_instant(when: datetime) -> str:
    """The one form instants are recorded in: UTC, `Z`, seconds unless there is a fraction."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat(timespec="microseconds" if when.microsecond else "seconds").replace("+00:00", "Z")


def int_setting(name: str, default: int, low: int = 1) -> int:
    """An optional integer knob from the config's env_vars (e.g. APP_FEATURE_WINDOW_DAYS)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not an integer") from None
    if value < low:
        raise UsageError(f"{name}={value} must be at least {low}")
    return value


def git_version() -> str:
    """GIT_SHA (set when the image is built) or `git describe` of this code; never fails."""
    if os.environ.get("GIT_SHA"):
        return os.environ["GIT_SHA"]
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def recorded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The injected variables and the config's APP_* knobs, without credentials in URIs."""
    environ = os.environ if environ is None else environ
    keep = {k: v for k, v in environ.items()
            if (k in _RECORDED or k.startswith("APP_")) and not _SECRET.search(k)}
    return {k: re.sub(r"//[^/@\s]+@", "//***@", v) for k, v in sorted(keep.items())}


def run_step(step: str, body: Callable[[StepContext], Mapping[str, Any]]) -> None:
    """Run `body` as the step's whole program and write its marker `<step>.json` last.

    The marker (step, started_ns, finished_ns, env and the step's outputs) is written only
    after every output, so its presence says the step finished for that date.
    """
    started = time.time_ns()
    try:
        ctx = StepContext.from_environ(step)
        outputs = dict(body(ctx))
        marker = {"step": step, "started_ns": started, "finished_ns": time.time_ns(),
                  "env": recorded_env(), "git_version": git_version(), **outputs}
        ctx.partition.write_json(f"{step}.json", marker)
    except JobError as exc:
        fail(step, exc)
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("mlflow", "sqlalchemy"):  # a service failing, not our bug
            fail(step, MlflowUnavailable(f"MLflow: {first_line(exc)}"))
        raise
    print(f"{step}: done in {(time.time_ns() - started) / 1e9:.1f}s; outputs in {ctx.partition.uri}")


def fail(step: str, exc: JobError) -> None:
    print(f"error: {step}: {first_line(exc)}", file=sys.stderr, flush=True)
    sys.exit(exc.exit_code)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def log(message: str) -> None:
    """Progress on stdout (the orchestrator's log); errors go to stderr through `fail`."""
    print(message, flush=True)
