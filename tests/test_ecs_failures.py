"""esteira.ecs_failures: which ECS stops are the platform's (retried against infra_retries) and
which the job's (retries) — from DescribeTasks' camelCase and the state machine's PascalCase alike."""

from __future__ import annotations

import pytest

from esteira.ecs_failures import APPLICATION, INFRASTRUCTURE, StoppedTask, infra_delay_seconds


def task(stop_code: str | None, reason: str | None, container_reason: str | None = None,
         exit_code: int | None = None) -> dict[str, object]:
    container: dict[str, object] = {"name": "job", "lastStatus": "STOPPED"}
    if container_reason is not None:
        container["reason"] = container_reason
    if exit_code is not None:
        container["exitCode"] = exit_code
    found: dict[str, object] = {"lastStatus": "STOPPED", "containers": [container]}
    if stop_code is not None:
        found["stopCode"] = stop_code
    if reason is not None:
        found["stoppedReason"] = reason
    return found


def pascal(value: object) -> object:
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


CASES = [
    (task("SpotInterruption", "Your Spot Task was interrupted."), INFRASTRUCTURE),
    (task("SpotInterruption", "Your Spot Task was interrupted.", exit_code=143), INFRASTRUCTURE),  # SIGTERM'd
    (task("TerminationNotice", "Task stopped because the underlying host is being retired"), INFRASTRUCTURE),
    (task("InfrastructureHealth", "infrastructure issue"), INFRASTRUCTURE),
    (task("TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
          "CannotPullContainerError: pull image manifest has been retried 5 time(s)"), INFRASTRUCTURE),
    (task("EssentialContainerExited", "Host EC2 (instance i-0abc) terminated.", exit_code=137), INFRASTRUCTURE),
    (task(None, None, "ResourceInitializationError: unable to pull secrets or registry auth"), INFRASTRUCTURE),
    (task(None, None, "ContainerRuntimeTimeoutError: Could not transition to running; timed out"), INFRASTRUCTURE),
    (task(None, None, "CannotStartContainerError: failed to get container status"), INFRASTRUCTURE),
    (task(None, None, "CannotCreateVolumeError: volume driver failed"), INFRASTRUCTURE),
    (task("EssentialContainerExited", "Essential container in task exited", exit_code=1), APPLICATION),
    (task("EssentialContainerExited", "Essential container in task exited",
          "OutOfMemoryError: Container killed due to memory usage", 137), APPLICATION),  # the job's sizing
    (task("UserInitiated", "Task killed by the user", exit_code=143), APPLICATION),
    (task("EssentialContainerExited", "Essential container in task exited"), APPLICATION),  # no exit code
    (task(None, None), APPLICATION),
    # look-alikes are not matched: the patterns are anchored
    (task("EssentialContainerExited", "The Host EC2 is fine", "job said CannotConnectError", 1), APPLICATION),
]


@pytest.mark.parametrize(("description", "expected"), CASES)
def test_each_stop_is_classified_in_both_casings(description: dict[str, object], expected: str) -> None:
    for shape in (description, pascal(description)):
        assert StoppedTask.from_description(shape).classification() == expected  # type: ignore[arg-type]


def test_success_is_exit_code_zero_only() -> None:
    assert StoppedTask.from_description(task("EssentialContainerExited", "done", exit_code=0)).succeeded
    assert not StoppedTask.from_description(task("SpotInterruption", "gone")).succeeded


def test_describe_says_what_ecs_said() -> None:
    line = StoppedTask.from_description(task("SpotInterruption", "Your Spot Task was interrupted.")).describe()
    assert line == "no exit code, stop code SpotInterruption, stopped reason Your Spot Task was interrupted."


def test_infrastructure_waits_double() -> None:
    assert [infra_delay_seconds(60, n) for n in (1, 2, 3)] == [60, 120, 240]
