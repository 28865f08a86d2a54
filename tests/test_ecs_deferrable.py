"""Deferrable ECS steps (environments.yaml's `deferrable_steps`, Airflow 3): what dag.test() cannot show.

test_ecs_infra_retries runs the failure scripts and the per-task timeout through `dag.test()` in both
modes; dag.test() runs each trigger in line, once, to its event, and enforces no trigger timeout.
So here the operator and its triggers are driven by hand, as Airflow would: `execute` until it
defers (TaskDeferred), the trigger rebuilt from its serialize() (what the triggerer stores, JSON),
run with asyncio, and the task resumed with `resume_execution`. ECS is moto, scripted as in
test_ecs_infra_retries (a STUCK task runs until someone stops it).

What is held: the option reaches the operator Airflow runs; a trigger serializes to esteira's
module with JSON kwargs; the step's timeout stops the ECS task while deferred, and a triggerer
restart does not extend it; every deferral carries what is left of the try's execution_timeout
(Airflow 3 does not count deferred time against it), and when that trigger timeout fires the
try's running task is stopped, as on_kill stops it in a worker; a user's kill stops it too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.bases.operator import TriggerFailureReason
from airflow.sdk.exceptions import TaskDeferralError, TaskDeferralTimeout, TaskDeferred
from airflow.sdk.module_loading import import_string
from failure_scripts import OK, SPOT
from moto.core.responses import ActionResult
from moto.ecs.responses import EC2ContainerServiceResponse
from test_ecs_infra_retries import DELAY, STEP, STUCK, ScriptedEcs, write_projects
from test_ecs_timeout import ON_KILL_REASON, aws, create_network, create_platform, ecs_tasks, parse_ecs_step

from esteira.airflow import ecs_operator
from esteira.airflow.compat import TRIGGER_FAIL, TRIGGER_TIMEOUT_ERRORS
from esteira.airflow.ecs_operator import EcsRunTaskOperator, InfrastructureFailure, StepTimeout
from esteira.airflow.ecs_trigger import (
    KILL_REASON,
    STOP_REASON,
    TIMED_OUT,
    EsteiraEcsTaskTrigger,
    EsteiraWaitTrigger,
)

__all__ = ["aws"]  # the fixture, shared with test_ecs_timeout

TIMEOUT = 3  # the step's timeout_seconds here


def load_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deferrable: bool | None, *,
              infra_retries: int = 1) -> EcsRunTaskOperator:
    """recsys's first step as Airflow's DagBag builds it from the real dags/ folder, with dev's
    `deferrable_steps` set as given (None: not written, the default)."""
    subnets, group = create_network()
    projects = write_projects(tmp_path, subnets, group, retries=0, infra_retries=infra_retries,
                              timeout_seconds=TIMEOUT, deferrable=bool(deferrable))
    if deferrable is False:  # written out, rather than left to the default
        envs = projects / "environments.yaml"
        envs.write_text(envs.read_text().replace("  data_root:", "  deferrable_steps: false\n  data_root:", 1))
        assert envs.read_text().count("deferrable_steps: false") == 1
    monkeypatch.setenv("ESTEIRA_CACHE_DIR", "off")
    _, op = parse_ecs_step(monkeypatch, projects)
    create_platform(op, subnets[0])
    return op


@pytest.fixture
def step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: None) -> Iterator[EcsRunTaskOperator]:
    yield load_step(tmp_path, monkeypatch, True)


def context(op: EcsRunTaskOperator) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id=op.dag_id, task_id=op.task_id, run_id="manual__2026-11-20T03:00:00+00:00",
                         map_index=-1, xcom_push=lambda **_: None)
    return {"ti": ti}


def rebuilt(deferred: TaskDeferred) -> Any:
    """The trigger as a (re)started triggerer makes it: from serialize(), through JSON."""
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath.startswith("esteira.airflow.ecs_trigger.")
    return import_string(classpath)(**json.loads(json.dumps(kwargs)))


def first_event(trigger: Any, seconds: float) -> Any:
    """The trigger's first event, or None if it has none within `seconds` (it is then cancelled, as a
    triggerer that goes away cancels it)."""
    async def run() -> Any:
        try:
            return await asyncio.wait_for(anext(trigger.run()), seconds)
        except TimeoutError:
            return None
    return asyncio.run(run())


def run_try(op: EcsRunTaskOperator, ctx: dict[str, Any], waits: list[float]) -> Any:
    """One try, as Airflow runs it: execute, then while the operator defers, its trigger rebuilt from
    serialize() and run to its event (an infrastructure wait recorded in `waits`, not waited), and
    the task resumed with that event."""
    call = functools.partial(op.execute, ctx)
    while True:
        try:
            return call()
        except TaskDeferred as deferred:
            trigger = rebuilt(deferred)
            if isinstance(trigger, EsteiraWaitTrigger):
                waits.append(trigger.delay_seconds)
                trigger.moment = time.time()
            event = first_event(trigger, 10)
            call = functools.partial(op.resume_execution, deferred.method_name, {"event": event.payload}, ctx)


@pytest.mark.usefixtures("airflow_db", "aws")
@pytest.mark.parametrize("deferrable", [None, False, True], ids=["default", "false", "true"])
def test_the_option_flows_from_environments_yaml_to_the_operator_airflow_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deferrable: bool | None,
) -> None:
    op = load_step(tmp_path, monkeypatch, deferrable)
    assert op.deferrable is bool(deferrable)
    # the try's budgets and timeouts are the same either way
    assert (op.task_timeout_seconds, op.infra_retries, op.infra_retry_delay_seconds) == (TIMEOUT, 1, DELAY)


@pytest.mark.usefixtures("airflow_db")
def test_a_timeout_while_deferred_stops_the_task_and_a_restarted_triggerer_keeps_the_deadline(
    step: EcsRunTaskOperator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ecs = ScriptedEcs((STUCK,), step.awslogs_stream_prefix)
    ecs.install(monkeypatch)
    with pytest.raises(TaskDeferred) as deferred:
        step.execute(context(step))
    assert isinstance(deferred.value.trigger, EsteiraEcsTaskTrigger)
    [(arn, run_at)] = ecs.started
    # the first triggerer watches 1.5 s of the 3, then goes away (a restart, a redistribution)
    assert first_event(rebuilt(deferred.value), 1.5) is None
    assert ecs.stop_calls == [] and [t["taskArn"] for t in ecs_tasks(step.cluster, "RUNNING")] == [arn]
    # the next triggerer rebuilds the trigger from serialize(): the same deadline, not 3 s more
    event = first_event(rebuilt(deferred.value), 10)
    [(stopped, reason, stop_at)] = ecs.stop_calls
    assert (stopped, reason) == (arn, STOP_REASON)
    assert timedelta(seconds=TIMEOUT - 0.5) <= stop_at - run_at <= timedelta(seconds=TIMEOUT + 1), stop_at - run_at
    [task] = ecs_tasks(step.cluster)
    assert (task["lastStatus"], task["stoppedReason"]) == ("STOPPED", STOP_REASON)
    assert event.payload["ended"] == TIMED_OUT and event.payload["state"]["attempt"] == 1
    # resumed, the operator judges it as a timeout, as when it waits in the worker
    with pytest.raises(StepTimeout, match=rf"step {STEP}: timeout: ECS task {arn.split('/')[-1]} was still "
                                          rf"RUNNING after timeout_seconds {TIMEOUT} \(attempt 1 of 2\); stopped it"):
        step.resume_execution(deferred.value.method_name, {"event": event.payload}, context(step))


@pytest.mark.usefixtures("airflow_db")
def test_every_deferral_carries_the_rest_of_the_try_and_its_timeout_stops_the_running_task(
    step: EcsRunTaskOperator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spot interruption, the wait, then a task that hangs: the try's execution_timeout is counted
    across the three deferrals; when Airflow fails the deferred try on it, the hung task is stopped
    (with on_kill's reason, as in a worker), not the one before it."""
    ecs = ScriptedEcs((SPOT, STUCK), step.awslogs_stream_prefix)
    ecs.install(monkeypatch)
    ctx = context(step)
    try_deadline = time.time() + step.execution_timeout.total_seconds()

    def deferral(call: Callable[[], Any], kind: type) -> TaskDeferred:
        with pytest.raises(TaskDeferred) as deferred:
            call()
        assert type(deferred.value.trigger) is kind
        # the rest of the try: Airflow 3 would otherwise give a deferred try no bound at all
        timeout = deferred.value.timeout
        assert isinstance(timeout, timedelta)
        assert abs(time.time() + timeout.total_seconds() - try_deadline) < 2
        return deferred.value

    def resumed(deferred: TaskDeferred) -> Callable[[], Any]:
        event = first_event(rebuilt(deferred), 5)
        return lambda: step.resume_execution(deferred.method_name, {"event": event.payload}, ctx)

    spot = deferral(lambda: step.execute(ctx), EsteiraEcsTaskTrigger)
    wait = deferral(resumed(spot), EsteiraWaitTrigger)
    assert (wait.trigger.delay_seconds, wait.trigger.state["attempt"]) == (DELAY, 2)
    hung = deferral(resumed(wait), EsteiraEcsTaskTrigger)
    assert hung.trigger.state == {"attempt": 2, "try_deadline": pytest.approx(try_deadline, abs=2)}
    [_, (second, _)] = ecs.started
    assert hung.trigger.task_arn == second
    assert [t["taskArn"] for t in ecs_tasks(step.cluster, "RUNNING")] == [second]
    # the trigger's timeout passed: Airflow resumes the task only to fail it
    with pytest.raises(TaskDeferralTimeout):
        step.resume_execution(TRIGGER_FAIL, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, ctx)
    assert [(arn, reason) for arn, reason, _ in ecs.stop_calls] == [(second, ON_KILL_REASON)]
    assert ecs_tasks(step.cluster, "RUNNING") == []


@pytest.mark.usefixtures("airflow_db")
def test_a_failed_trigger_fails_the_try_and_leaves_the_task_to_the_next_try(
    step: EcsRunTaskOperator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trigger's error (AWS refused a DescribeTasks...) is not a timeout: as an error in a worker, it
    fails the try, which Airflow retries, and the next try reattaches to the task still running."""
    ecs = ScriptedEcs((STUCK,), step.awslogs_stream_prefix)
    ecs.install(monkeypatch)
    with pytest.raises(TaskDeferred):
        step.execute(context(step))
    with pytest.raises(TaskDeferralError):
        step.resume_execution(TRIGGER_FAIL, {"error": "Trigger failure", "traceback": ["..."]}, context(step))
    assert ecs.stop_calls == []
    [(arn, _)] = ecs.started
    with pytest.raises(TaskDeferred) as again:  # the next try
        step.execute(context(step))
    assert again.value.trigger.task_arn == arn and len(ecs.started) == 1


@pytest.mark.usefixtures("airflow_db")
def test_a_user_kill_while_deferred_stops_the_task(step: EcsRunTaskOperator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3 calls a trigger's on_kill when a user fails or clears the deferred task."""
    ecs = ScriptedEcs((STUCK,), step.awslogs_stream_prefix)
    ecs.install(monkeypatch)
    with pytest.raises(TaskDeferred) as deferred:
        step.execute(context(step))
    asyncio.run(rebuilt(deferred.value).on_kill())
    [(arn, _)] = ecs.started
    assert [(stopped, reason) for stopped, reason, _ in ecs.stop_calls] == [(arn, KILL_REASON)]
    assert ecs_tasks(step.cluster, "RUNNING") == []


def test_a_restarted_wait_ends_when_the_first_would_have() -> None:
    trigger = EsteiraWaitTrigger(delay_seconds=1.0, moment=time.time() + 1.0, state={"attempt": 2})
    started = time.monotonic()
    assert first_event(trigger, 0.5) is None  # the triggerer goes away half-way
    classpath, kwargs = trigger.serialize()
    assert classpath == "esteira.airflow.ecs_trigger.EsteiraWaitTrigger"
    event = first_event(import_string(classpath)(**json.loads(json.dumps(kwargs))), 5)
    assert 0.9 <= time.monotonic() - started <= 1.4
    assert event.payload == {"ended": "waited", "state": {"attempt": 2}}


def test_the_trigger_timeout_esteira_recognises_is_airflows() -> None:
    """resume_execution stops the running task only on a trigger timeout, which Airflow 3 says this way."""
    assert TriggerFailureReason.TRIGGER_TIMEOUT.value in TRIGGER_TIMEOUT_ERRORS
    assert TriggerFailureReason.TRIGGER_FAILURE.value not in TRIGGER_TIMEOUT_ERRORS


@pytest.mark.usefixtures("airflow_db", "aws")
@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferrable"])
@pytest.mark.parametrize("refusals", [1, 2])
def test_a_runtask_that_places_nothing_is_an_infrastructure_failure_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deferrable: bool, refusals: int,
) -> None:
    """RunTask's own `failures` (no capacity, no instance) start no task: an infrastructure failure,
    retried after the wait within the try, in both modes. moto never reports such failures: here its
    first `refusals` RunTasks do, then the task succeeds."""
    op = load_step(tmp_path, monkeypatch, deferrable, infra_retries=1)
    ecs = ScriptedEcs((OK,), op.awslogs_stream_prefix)
    ecs.install(monkeypatch)
    real_run = EC2ContainerServiceResponse.run_task
    refused: list[bool] = []
    failure = {"arn": "arn:aws:ecs:us-east-1:111111111111:container-instance/ml-cluster-recsys/0a1b",
               "reason": "RESOURCE:MEMORY"}

    def run_task(response: EC2ContainerServiceResponse) -> ActionResult:
        if len(refused) < refusals:
            refused.append(True)
            return ActionResult({"tasks": [], "failures": [failure]})
        return real_run(response)

    monkeypatch.setattr(EC2ContainerServiceResponse, "run_task", run_task)
    waits: list[float] = []
    monkeypatch.setattr(ecs_operator, "sleep", waits.append)
    if refusals == 1:
        assert run_try(op, context(op), waits) == "esteira-test: the job of attempt 1"  # its last log line
        assert len(ecs.started) == 1
    else:
        with pytest.raises(InfrastructureFailure, match=r"infrastructure failure on all 2 ECS task attempt\(s\) "
                                                        r".*RunTask failures: arn:aws:ecs:\S+ RESOURCE:MEMORY"):
            run_try(op, context(op), waits)
        assert ecs.started == []
    assert (len(refused), waits) == (refusals, [DELAY])
