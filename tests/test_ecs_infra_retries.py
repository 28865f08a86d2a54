"""The failure scripts (tests/failure_scripts.py), run by Airflow on ECS: the same attempts, waits and end
as the state machine makes (test_asl_infra_retries.py drives Step Functions through the same scripts).

End to end and in-process, as test_ecs_timeout: the real dags/ folder parsed by Airflow's DagBag with
the ecs backend, a copy of recsys cut to one step with the script's budgets, and `dag.test()` (Airflow
3), which runs each try through the SDK's task runner in this process, retries included. ECS is moto:
every RunTask's task is stopped at once as the script says for that attempt (moto's own StopTask,
which frees the instance, then the stop code, exit code and container reason ECS would report), or
left RUNNING. The operator's wait between infrastructure retries is recorded instead of slept.

Each script runs twice: with the step waiting in the worker, and deferrable (environments.yaml's
`deferrable_steps`), where `dag.test()` runs each trigger in line and resumes the task with its
event; the attempts and the end must be the same. Deferred, the waits between infrastructure retries
are EsteiraWaitTrigger's, recorded and really waited (1 s, 2 s), and the worker must never sleep.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from airflow.providers.amazon.aws.utils.task_log_fetcher import AwsTaskLogFetcher
from failure_scripts import SCRIPTS, SPOT, Script, Stop, expected_failure
from moto.ecs.models import EC2ContainerServiceBackend, Task
from test_ecs_timeout import (
    DEV,
    LOGICAL,
    ON_KILL_REASON,
    PROJECT,
    aws,
    create_network,
    create_platform,
    ecs_tasks,
    parse_ecs_step,
)

from conftest import PROJECTS
from esteira.airflow import ecs_operator
from esteira.airflow.compat import generate_uuid
from esteira.airflow.ecs_operator import STOP_REASON, EcsRunTaskOperator, try_timeout_seconds
from esteira.airflow.ecs_trigger import EsteiraWaitTrigger
from esteira.ecs_failures import INFRASTRUCTURE, TIMEOUT, StoppedTask
from esteira.notifications import failure_record, log_stream_url

__all__ = ["aws"]  # the fixture, shared with test_ecs_timeout

STEP = "extract_features"  # recsys's first step, the project's only one here
DELAY = 1  # schedule.infra_retry_delay_seconds, and retry_delay_seconds: 1 s (their minimum)
STUCK = None  # an attempt whose task keeps RUNNING until someone stops it
UNSCRIPTED = Stop(99, stopped_reason="esteira test: a RunTask the script did not expect")
MODES = (False, True)  # the step's `deferrable`
MODE_IDS = ("in-worker", "deferrable")
DEFERRED = "is awaited in the triggerer"  # the operator's line when it defers to an ECS task's trigger


@dataclass
class ScriptedEcs:
    """moto's ECS, scripted: the i-th task RunTask starts stops as `stops[i]` says (after `after[i]`
    seconds if given), and writes one log line to its CloudWatch stream. Records RunTask and StopTask."""

    stops: tuple[Stop | None, ...]
    stream_prefix: str
    after: dict[int, float] = field(default_factory=dict)
    started: list[tuple[str, datetime]] = field(default_factory=list)
    stop_calls: list[tuple[str, str, datetime]] = field(default_factory=list)
    timers: list[threading.Timer] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_run, real_stop = EC2ContainerServiceBackend.run_task, EC2ContainerServiceBackend.stop_task

        def run_task(backend: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> list[Task]:
            tasks = real_run(backend, *args, **kwargs)
            for task in tasks:
                attempt = len(self.started)
                self.started.append((task.task_arn, datetime.now(UTC)))
                self.log_line(task, f"esteira-test: the job of attempt {attempt + 1}")
                stop = self.stops[attempt] if attempt < len(self.stops) else UNSCRIPTED
                if stop is STUCK:
                    continue
                if attempt in self.after:
                    timer = threading.Timer(self.after[attempt], self.end, (backend, task, stop, real_stop))
                    self.timers.append(timer)
                    timer.start()
                else:
                    self.end(backend, task, stop, real_stop)
            return tasks

        def stop_task(backend: EC2ContainerServiceBackend, cluster: str, task: str, reason: str) -> Task:
            self.stop_calls.append((task, reason, datetime.now(UTC)))
            return real_stop(backend, cluster, task, reason)

        monkeypatch.setattr(EC2ContainerServiceBackend, "run_task", run_task)
        monkeypatch.setattr(EC2ContainerServiceBackend, "stop_task", stop_task)

    @staticmethod
    def end(backend: EC2ContainerServiceBackend, task: Task, stop: Stop, real_stop: Any) -> None:
        """What ECS reports once the task stopped this way (moto's StopTask sets no stop code)."""
        real_stop(backend, task.cluster_name, task.task_arn, stop.stopped_reason)
        task.stop_code = stop.stop_code
        [container] = task.containers
        container.last_status = "STOPPED"
        container.exitCode = stop.exit_code
        if stop.container_reason is not None:
            container.reason = stop.container_reason

    def log_line(self, task: Task, message: str) -> None:
        """The job's output, where the operator's awslogs reader looks for this task's stream."""
        logs = boto3.client("logs", region_name=DEV["region"])
        stream = f"{self.stream_prefix}/{task.id}"
        logs.create_log_stream(logGroupName=f"/ecs/{PROJECT}", logStreamName=stream)
        logs.put_log_events(logGroupName=f"/ecs/{PROJECT}", logStreamName=stream, logEvents=[
            {"timestamp": int(datetime.now(UTC).timestamp() * 1000), "message": message}])


def write_projects(tmp_path: Path, subnets: list[str], group: str, *, retries: int, infra_retries: int,
                   timeout_seconds: int, deferrable: bool = False) -> Path:
    """projects/ with dev's network set to moto's ids (and deferrable_steps when `deferrable`), and
    recsys cut to its first step with these budgets."""
    dest = tmp_path / "projects"
    dest.mkdir()
    envs = yaml.safe_load((PROJECTS / "environments.yaml").read_text())
    envs["local"]["home"] = "../home"
    envs["dev"]["network"].update(subnets=subnets, security_groups=[group])
    if deferrable:
        envs["dev"]["deferrable_steps"] = True
    (dest / "environments.yaml").write_text(yaml.safe_dump(envs, sort_keys=False))
    cfg = yaml.safe_load((PROJECTS / PROJECT / "config.yaml").read_text())
    cfg["schedule"].update(retries=retries, infra_retries=infra_retries, infra_retry_delay_seconds=DELAY,
                           retry_delay_seconds=DELAY)
    [step] = [s for s in cfg["batch"]["pipeline"]["steps"] if s["id"] == STEP]
    step.pop("depends_on", None)
    step.update(timeout_seconds=timeout_seconds)
    cfg["batch"]["pipeline"]["steps"] = [step]
    cfg["notifications"] = {"on_success": [], "on_failure": ["oncall@rentcars.com"]}
    (dest / PROJECT).mkdir()
    (dest / PROJECT / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


@dataclass
class Run:
    ti: Any
    op: EcsRunTaskOperator
    ecs: ScriptedEcs
    waits: list[float]
    log: str
    seconds: float
    notifications: list[dict[str, Any]]  # the messages published to the project's topic

    def failures(self) -> list[dict[str, Any]]:
        [message] = self.notifications
        failures: list[dict[str, Any]] = message["failures"]
        return failures

    def log_link(self, task_arn: str) -> str:
        return log_stream_url(DEV["region"], self.op.awslogs_group, self.op.awslogs_stream_prefix, task_arn)


def subscribe_inbox(topic_arn: str) -> str:
    """The project's topic (the stack's, in production), with an SQS queue that receives its messages."""
    sns, sqs = boto3.client("sns", region_name=DEV["region"]), boto3.client("sqs", region_name=DEV["region"])
    assert sns.create_topic(Name=topic_arn.rsplit(":", 1)[-1])["TopicArn"] == topic_arn
    url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue)
    return url


def published(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=DEV["region"])
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(json.loads(m["Body"])["Message"]) for m in messages]


@pytest.fixture
def run_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             aws: None) -> Iterator[Any]:
    """Runs the one-step DAG (Airflow 3, ecs backend) against a scripted ECS; returns what happened."""
    scripted: list[ScriptedEcs] = []

    def run(stops: tuple[Stop | None, ...], *, retries: int, infra_retries: int, timeout_seconds: int = 60,
            after: dict[int, float] | None = None, execution_timeout: float | None = None,
            deferrable: bool = False) -> Run:
        subnets, group = create_network()
        projects = write_projects(tmp_path, subnets, group, retries=retries, infra_retries=infra_retries,
                                  timeout_seconds=timeout_seconds, deferrable=deferrable)
        dag, op = parse_ecs_step(monkeypatch, projects)
        assert (op.retries, op.infra_retries, op.infra_retry_delay_seconds) == (retries, infra_retries, DELAY)
        assert op.task_timeout_seconds == timeout_seconds
        assert op.deferrable is deferrable  # environments.yaml's deferrable_steps
        assert op.execution_timeout == timedelta(seconds=try_timeout_seconds(timeout_seconds, infra_retries, DELAY))
        if execution_timeout is not None:  # the task dag.test() runs is this object
            op.execution_timeout = timedelta(seconds=execution_timeout)
        create_platform(op, subnets[0])
        ecs = ScriptedEcs(stops, op.awslogs_stream_prefix, after or {})
        scripted.append(ecs)
        ecs.install(monkeypatch)
        waits: list[float] = []
        inbox = subscribe_inbox(dag.on_failure_callback.topic_arn)
        if deferrable:
            def worker_sleep(seconds: float) -> None:
                raise AssertionError(f"a deferrable step slept {seconds}s in the worker")

            real_wait = EsteiraWaitTrigger.run

            async def recorded_wait(trigger: EsteiraWaitTrigger) -> Any:
                waits.append(trigger.delay_seconds)
                async for event in real_wait(trigger):
                    yield event

            monkeypatch.setattr(ecs_operator, "sleep", worker_sleep)
            monkeypatch.setattr(EsteiraWaitTrigger, "run", recorded_wait)
        else:
            monkeypatch.setattr(ecs_operator, "sleep", waits.append)
        started = datetime.now(UTC)
        try:
            dag_run = dag.test(logical_date=LOGICAL)
        finally:
            for thread in threading.enumerate():  # the operator's CloudWatch readers end before moto does
                if isinstance(thread, AwsTaskLogFetcher):
                    thread.join(timeout=10)
        seconds = (datetime.now(UTC) - started).total_seconds()
        return Run(dag_run.get_task_instance(STEP), op, ecs, waits, capsys.readouterr().out, seconds,
                   published(inbox))

    yield run
    for ecs in scripted:
        for timer in ecs.timers:
            timer.cancel()


def expected(script: Script) -> tuple[int, list[float]]:
    """Airflow tries and infrastructure waits the script implies: within a try, an infrastructure
    failure with budget left waits DELAY, 2 x DELAY, 4 x DELAY... and the next task follows; any other
    failure ends the try (a next one, if the script goes on, starts with the full budget)."""
    tries, spent, waits = 1, 0, []
    for stop in script.attempts[:-1]:
        failure = StoppedTask(stop.stop_code, stop.stopped_reason, stop.container_reason, stop.exit_code)
        if failure.classification() == INFRASTRUCTURE and spent < script.infra_retries:
            spent += 1
            waits.append(DELAY * 2 ** (spent - 1))
        else:
            tries, spent = tries + 1, 0
    return tries, waits


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_airflow_makes_the_scripts_attempts_and_ends_as_it_says(run_step: Any, script: Script, deferrable: bool) -> None:
    run = run_step(script.attempts, retries=script.retries, infra_retries=script.infra_retries, deferrable=deferrable)
    tries, waits = expected(script)
    cluster = run.op.cluster

    # the attempts: one RunTask each, no more, no fewer, each a new task (never the stopped one again)
    assert len(run.ecs.started) == len(script.attempts), run.log
    assert len({arn for arn, _ in run.ecs.started}) == len(script.attempts)
    tasks = ecs_tasks(cluster)
    assert len(tasks) == len(script.attempts) and ecs_tasks(cluster, "RUNNING") == []
    # all under the try's reattach key (the task instance's), which found no RUNNING task to take up
    ti = run.ti
    assert {t["startedBy"] for t in tasks} == {generate_uuid(ti.dag_id, ti.task_id, ti.run_id, str(ti.map_index))}
    assert run.ecs.stop_calls == []  # every task stopped by itself: esteira stopped none
    # the waits between infrastructure retries, doubling, afresh in each try
    assert run.waits == waits
    # the end: success, or failure on the last attempt's classification, after the tries Airflow made
    assert (run.ti.state, run.ti.try_number) == ("success" if script.succeeds else "failed", tries)
    budget = 1 + script.infra_retries
    for n in range(1, len(waits) + 1):
        assert f"{INFRASTRUCTURE} failure on attempt {n} of {budget}" in run.log
    if not script.succeeds:
        last = script.attempts[-1]
        said = StoppedTask(last.stop_code, last.stopped_reason, last.container_reason, last.exit_code).describe()
        assert f"step {STEP}: {script.failure} failure" in run.log
        assert said in run.log
        if script.failure == INFRASTRUCTURE:  # not retried by Airflow: the try made all its attempts
            assert f"on all {budget} ECS task attempt(s)" in run.log
            assert "InfrastructureFailure" in run.log
        # the failure notification: the record the state machine sends for the same script
        # (test_asl_infra_retries.py), for the last attempt
        last_arn = run.ecs.started[-1][0]
        assert run.failures() == [expected_failure(script, STEP, run.log_link(last_arn))]
    else:
        assert run.notifications == []  # on_success lists nobody
    # the job's own log lines, read from each task's CloudWatch stream into the Airflow task's log
    for attempt in range(1, len(script.attempts) + 1):
        assert f"esteira-test: the job of attempt {attempt}" in run.log
    # deferred: every ECS task was awaited by a trigger (none by the worker, which never slept)
    assert run.log.count(DEFERRED) == (len(script.attempts) if deferrable else 0)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", MODES, ids=MODE_IDS)
def test_the_timeout_is_per_ecs_task_and_a_timed_out_task_is_stopped(run_step: Any, deferrable: bool) -> None:
    """timeout_seconds bounds each ECS task, as on Step Functions: the first task runs 1.5 s of its 2 s
    before a spot interruption, the second gets 2 s of its own, then StopTask; the try fails as a
    timeout (Airflow's `retries`, not the infrastructure budget), before Airflow's outer guard.
    Deferred, the trigger stops the task while no worker holds the try."""
    run = run_step((SPOT, STUCK), retries=0, infra_retries=2, timeout_seconds=2, after={0: 1.5}, deferrable=deferrable)
    [(_, first_at), (second, second_at)] = run.ecs.started
    [(stopped, reason, stop_at)] = run.ecs.stop_calls
    assert (stopped, reason) == (second, STOP_REASON)
    # its deadline is set just before its RunTask, so it is stopped 2 s after that (less RunTask's time)
    assert timedelta(seconds=1.8) <= stop_at - second_at <= timedelta(seconds=3.5)
    assert stop_at - first_at >= timedelta(seconds=3.5)  # a timeout per try would have stopped at 2 s
    assert ecs_tasks(run.op.cluster, "RUNNING") == []
    assert run.waits == [DELAY]
    assert (run.ti.state, run.ti.try_number) == ("failed", 1)
    assert f"step {STEP}: {TIMEOUT}: ECS task {second.split('/')[-1]} was still RUNNING" in run.log
    assert "StepTimeout" in run.log and "AirflowTaskTimeout" not in run.log
    assert run.log.count(DEFERRED) == (2 if deferrable else 0)
    # the state machine's record of a timed-out step (test_asl_infra_retries.py): the orchestrator
    # stopped the task, ECS said nothing of its own
    assert run.failures() == [failure_record(STEP, TIMEOUT)]


@pytest.mark.usefixtures("airflow_db")
def test_the_outer_guard_stops_the_task_then_running(run_step: Any) -> None:
    """Airflow's execution_timeout (forced below the task's own timeout here: a hung worker) fires
    during the second task of the try: the provider's on_kill stops that one, not the first.
    (Deferred, the trigger's timeout is that guard; dag.test() does not enforce it, so
    test_ecs_deferrable drives that path.)"""
    run = run_step((SPOT, STUCK), retries=0, infra_retries=1, timeout_seconds=60, execution_timeout=3)
    [_, (second, _)] = run.ecs.started
    assert [(arn, reason) for arn, reason, _ in run.ecs.stop_calls] == [(second, ON_KILL_REASON)]
    assert ecs_tasks(run.op.cluster, "RUNNING") == []
    assert (run.ti.state, run.ti.try_number) == ("failed", 1)
    assert "AirflowTaskTimeout" in run.log
