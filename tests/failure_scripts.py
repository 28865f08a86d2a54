"""Failure scripts both orchestrators are driven through (issue 13): what ECS reports for each
attempt of one step, and what must follow. The Step Functions test (test_asl_infra_retries.py)
and the Airflow test (test_ecs_infra_retries.py) run the same scripts and assert the same
expectations, so the two orchestrators make the same attempts and end in the same state."""

from __future__ import annotations

from dataclasses import dataclass

from esteira.ecs_failures import APPLICATION, INFRASTRUCTURE


@dataclass(frozen=True)
class Stop:
    """How ECS reports one attempt's task once it stopped (DescribeTasks fields)."""

    exit_code: int | None
    stop_code: str = "EssentialContainerExited"
    stopped_reason: str = "Essential container in task exited"
    container_reason: str | None = None


OK = Stop(0)
APP_FAIL = Stop(1)
SPOT = Stop(None, "SpotInterruption", "Your Spot Task was interrupted.")
NOT_STARTED = Stop(None, "TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
                   "CannotPullContainerError: pull image manifest has been retried 5 time(s)")
HOST_GONE = Stop(137, "EssentialContainerExited", "Host EC2 (instance i-0abc) terminated.")


@dataclass(frozen=True)
class Script:
    name: str
    retries: int  # the step's application budget
    infra_retries: int  # its infrastructure budget
    attempts: tuple[Stop, ...]  # every attempt the step makes, in order: no more, no fewer
    succeeds: bool
    failure: str | None = None  # the classification of the last attempt when the step fails


SCRIPTS = (
    # a spot interruption then success: no application retry spent (retries 0 would otherwise fail)
    Script("spot-then-success", retries=0, infra_retries=3, attempts=(SPOT, OK), succeeds=True),
    # infrastructure failures past the budget: 1 try + 2 infrastructure retries, then it fails, saying why
    Script("infra-past-budget", retries=2, infra_retries=2, attempts=(SPOT, NOT_STARTED, HOST_GONE),
           succeeds=False, failure=INFRASTRUCTURE),
    # an application failure: the application's retries are spent, the infrastructure budget untouched
    Script("app-failure", retries=1, infra_retries=3, attempts=(APP_FAIL, APP_FAIL), succeeds=False,
           failure=APPLICATION),
    # each budget counts only its own kind
    Script("mixed", retries=1, infra_retries=1, attempts=(SPOT, APP_FAIL, OK), succeeds=True),
    # infrastructure budget 0: the first spot interruption fails the step, retries notwithstanding
    Script("no-infra-budget", retries=2, infra_retries=0, attempts=(SPOT,), succeeds=False, failure=INFRASTRUCTURE),
)


def expected_failure(script: Script, step: str, log: str | None) -> dict[str, object]:
    """The record a FAILED notification lists for the script's step: its last attempt, as ECS said it."""
    assert script.failure is not None
    last = script.attempts[-1]
    return {"step": step, "classification": script.failure, "exit_code": last.exit_code,
            "stop_code": last.stop_code, "stopped_reason": last.stopped_reason, "log": log}
