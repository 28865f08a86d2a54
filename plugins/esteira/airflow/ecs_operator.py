"""A step on ECS: the amazon provider's EcsRunTaskOperator, with esteira's two failure budgets.

Spot capacity is reclaimed and tasks fail to start for reasons that are not the job's. Counting
those against `retries` would spend the job's budget on the platform's faults, and a step with
`retries: 0` would fail on the first spot interruption. So one Airflow try runs up to
1 + `infra_retries` ECS tasks, and each stopped task is judged by esteira.ecs_failures, the table
the Step Functions state machine renders too (the two orchestrators must make the same attempts):

* exit code 0: the try succeeds;
* an infrastructure failure (that table, or RunTask's own `failures`: no capacity, no placement)
  with budget left in this try: one warning line, a wait of `infra_retry_delay_seconds`
  doubled at each retry (esteira.ecs_failures.infra_delay_seconds), then a NEW ECS task;
* an infrastructure failure with the budget spent: InfrastructureFailure, an AirflowFailException,
  so Airflow does not retry it (Step Functions does not either);
* an application failure (any other stop): ApplicationFailure, which Airflow retries (`retries`);
* a task still running after `task_timeout_seconds` (per ECS task, as Step Functions' TimeoutSeconds
  on the task state): StopTask ("esteira: step timeout"), then StepTimeout, which Airflow retries.

One function, `_judge`, makes that call for both ways of waiting, and `_fail` is the one place
those three failures leave the operator.

Airflow's `execution_timeout` is the outer guard around a whole try (try_timeout_seconds); when it
fires, the provider's on_kill stops the ECS task then running. The budget is per try: a retried try
starts again with `infra_retries`.

Reattach: the provider looks for a RUNNING task whose `startedBy` is a hash of the task instance
(dag, task, run, map index: the same for every try), so a restarted worker picks up the task its
previous try left running. Only the try's first task does so; a stopped task is never RUNNING, so a
new try, or a retry after an infrastructure failure, always starts a new task. The awslogs reader
is the provider's, one per ECS task (each task has its own log stream).

Deferrable (environments.yaml's `deferrable_steps`, for deployments with few worker slots, such as
MWAA): the same try, the same judgement, but no worker slot is held while an ECS task runs or an
infrastructure wait passes. execute() starts (or reattaches) the task and defers to
esteira.airflow.ecs_trigger.EsteiraEcsTaskTrigger, which stops the task at its deadline;
resume_after_task judges what it reports, then returns, fails, or defers to EsteiraWaitTrigger, after
which resume_after_wait starts the next task. The attempt number and the try's deadline travel in
the triggers' events. Airflow 3 does not count deferred time against execution_timeout (2.x does),
so every deferral's trigger timeout is what is left of the try's; when it fires, Airflow resumes the
task only to fail it, and resume_execution first stops the try's running ECS task, as on_kill would.
The job's CloudWatch lines reach the task log once its ECS task has stopped (no worker follows them
live), on resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import sleep  # the wait between infrastructure retries (tests replace it)
from typing import Any, NoReturn

from botocore.exceptions import ClientError

from esteira.airflow import compat
from esteira.airflow.compat import (
    TRIGGER_FAIL,
    TRIGGER_TIMEOUT_ERRORS,
    AirflowException,
    AirflowFailException,
    AwsLogsHook,
    AwsTaskLogFetcher,
    Context,
    EcsOperatorError,
    generate_uuid,
)
from esteira.airflow.ecs_trigger import (
    STOP_REASON,
    STOPPED,
    TIMED_OUT,
    EsteiraEcsTaskTrigger,
    EsteiraWaitTrigger,
    stop_task,
)
from esteira.airflow.run_failures import FAILURE_KEY
from esteira.ecs_failures import (
    APPLICATION,
    INFRASTRUCTURE,
    TASK_OVERHEAD_SECONDS,
    TIMEOUT,
    StoppedTask,
    infra_delay_seconds,
    try_timeout_seconds,
)
from esteira.notifications import NO_TASK, failure_record, log_stream_url, stopped_task_record

NOT_PLACED = "not_placed"  # RunTask started no task (its `failures`): an Attempt's third ending
LastLines = Callable[[int], list[str]]  # the job's last n CloudWatch lines of the attempt judged


class InfrastructureFailure(AirflowFailException):
    """The platform failed the step's every ECS task of this try: not the job's fault, and already
    retried `infra_retries` times, so Airflow must not retry it on the job's budget."""


class ApplicationFailure(AirflowException):
    """The job failed (non-zero exit code, out of memory...): Airflow retries it (`retries`)."""


class StepTimeout(AirflowException):
    """An ECS task outlived task_timeout_seconds and was stopped: Airflow retries it (`retries`)."""


@dataclass(frozen=True)
class Attempt:
    """One ECS task of a try and how it ended, however the operator waited for it: what _judge reads."""

    number: int  # 1-based, within the try
    ended: str  # STOPPED, TIMED_OUT (esteira.airflow.ecs_trigger) or NOT_PLACED
    task_arn: str | None = None
    task: dict[str, Any] | None = None  # STOPPED: its DescribeTasks description (what StoppedTask reads)
    said: str = ""  # NOT_PLACED: RunTask's failures; TIMED_OUT: what StopTask did
    last_status: str | None = None  # TIMED_OUT: the task's status at its deadline


def _no_lines(count: int) -> list[str]:
    return []


class EcsRunTaskOperator(compat.EcsRunTaskOperator):
    """The provider's operator (its RunTask, reattach, log reader and on_kill), with an execute that
    spends the infrastructure budget within the try and times out each ECS task, waiting in the
    worker or, `deferrable`, in the triggerer.

    Named as the provider's class: the UI, the MWAA bundle check and people know the step as one.
    """

    def __init__(self, *, task_timeout_seconds: int, infra_retries: int = 0, infra_retry_delay_seconds: int = 60,
                 deferrable: bool = False, **kwargs: Any) -> None:
        if kwargs.get("wait_for_completion") is False:
            raise ValueError("esteira's ECS steps wait for their tasks (in a worker, or deferred to the triggerer): "
                             "wait_for_completion=False would bypass their infrastructure retries and per-task timeout")
        # explicit, or [operators] default_deferrable (the provider's default) would decide: environments.yaml does
        super().__init__(deferrable=deferrable, **kwargs)
        self.task_timeout_seconds = task_timeout_seconds
        self.infra_retries = infra_retries
        self.infra_retry_delay_seconds = infra_retry_delay_seconds

    def execute(self, context: Context) -> str | None:
        attempts = 1 + self.infra_retries
        self.log.info("ECS task definition %s on cluster %s: up to %d ECS task(s) in this try, %ss each%s",
                      self.task_definition, self.cluster, attempts, self.task_timeout_seconds,
                      ", each awaited in the triggerer (deferrable)" if self.deferrable else "")
        if self.reattach:
            self._started_by = self._reattach_key(context)
        if self.deferrable:
            self._defer_to_task(context, {"attempt": 1, "try_deadline": self._try_deadline()})
        for number in range(1, attempts + 1):
            delay = self._judge(context, self._run_one(context, number), self._last_log_lines)
            if delay is None:  # the provider's return value: the job's last log line
                return next(iter(self._last_log_lines(1)), None) if self.do_xcom_push else None
            sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- the judgement, for both ways of waiting

    def _judge(self, context: Context, attempt: Attempt, last_lines: LastLines) -> float | None:
        """None when the attempt succeeded; the wait before a new ECS task when the infrastructure
        failed it and the try's budget has some left; else it fails the try (_fail)."""
        attempts = 1 + self.infra_retries
        of = f"attempt {attempt.number} of {attempts}"
        ecs_task = self._get_ecs_task_id(attempt.task_arn)
        # each failure leaves the notification's record (esteira.notifications), as the state machine makes it
        if attempt.ended == TIMED_OUT:
            self._fail(context, failure_record(self.task_id, TIMEOUT), StepTimeout(
                f"step {self.task_id}: {TIMEOUT}: ECS task {ecs_task} was still {attempt.last_status} after "
                f"timeout_seconds {self.task_timeout_seconds} ({of}); {attempt.said}"))
        if attempt.ended == STOPPED:
            stopped = StoppedTask.from_description(attempt.task or {})
            if stopped.succeeded:
                self.log.info("step %s: ECS task %s succeeded (%s)", self.task_id, ecs_task, of)
                return None
            said = f"ECS task {ecs_task}: {stopped.describe()}"
            record = stopped_task_record(self.task_id, stopped.classification(), stopped,
                                         self._log_link(attempt.task_arn))
            if stopped.classification() == APPLICATION:
                self._fail(context, record, ApplicationFailure(
                    f"step {self.task_id}: {APPLICATION} failure on {of} ({said}){self._last_logs(last_lines)}"))
        else:
            said = f"RunTask failures: {attempt.said}"
            record = failure_record(self.task_id, INFRASTRUCTURE, stopped_reason=NO_TASK)
        if attempt.number >= attempts:
            self._fail(context, record, InfrastructureFailure(
                f"step {self.task_id}: {INFRASTRUCTURE} failure on all {attempts} ECS task attempt(s) "
                f"(infra_retries {self.infra_retries}), not retried by Airflow; the last: {said}"))
        delay = infra_delay_seconds(self.infra_retry_delay_seconds, attempt.number)
        self.log.warning("step %s: %s failure on %s (%s); a new ECS task in %gs",
                         self.task_id, INFRASTRUCTURE, of, said, delay)
        return delay

    def _fail(self, context: Context, record: dict[str, Any], error: AirflowException) -> NoReturn:
        """The one exit of esteira's step failures (application, infrastructure, timeout), whichever
        way the try waited: the record the run's failure notification lists (esteira.airflow.run_failures),
        then the error."""
        context["ti"].xcom_push(key=FAILURE_KEY, value=record)
        raise error

    def _log_link(self, task_arn: str | None) -> str | None:
        """The CloudWatch console's page of the task's log stream, as the state machine links it."""
        if not (task_arn and self.awslogs_group and self.awslogs_region and self.awslogs_stream_prefix):
            return None
        return log_stream_url(self.awslogs_region, self.awslogs_group, self.awslogs_stream_prefix, task_arn)

    def _last_logs(self, last_lines: LastLines) -> str:
        """The job's last CloudWatch lines, as the provider adds them to its failure message."""
        lines = last_lines(self.number_logs_exception)
        return f"; its last {len(lines)} log line(s):\n" + "\n".join(lines) if lines else ""

    # -- starting an ECS task, for both ways of waiting

    def _reattach_key(self, context: Context) -> str:
        """The provider's `startedBy` for this task instance: the same in every try and every resume."""
        ti = context["ti"]
        return generate_uuid(*map(str, (ti.dag_id, ti.task_id, ti.run_id, ti.map_index)))

    def _start(self, context: Context, number: int) -> float:
        """Reattaches (the try's first task, if one is running) or starts one ECS task, and returns its
        deadline in epoch seconds: task_timeout_seconds from just before RunTask, or from a reattached
        task's createdAt (the time it ran already counts). RunTask's `failures` raise EcsOperatorError."""
        self.arn = None
        if number == 1 and self.reattach and self._started_by:
            self.log.info("looking for a running ECS task with startedBy=%r", self._started_by)
            self._try_reattach_task(started_by=self._started_by)
        if self.arn:
            deadline = self._created_at(self.arn) + self.task_timeout_seconds
        else:
            deadline = time.time() + self.task_timeout_seconds
            self._start_task()  # type: ignore[no-untyped-call]  # the provider's, unannotated
        if self.do_xcom_push:
            context["ti"].xcom_push(key="ecs_task_arn", value=self.arn)
        return deadline

    def _created_at(self, arn: str) -> float:
        """When ECS created the task (epoch seconds; now if ECS does not say, or says a later time)."""
        ecs: Any = self.client  # the provider annotates it `boto3.client`, a function, not a type
        tasks = ecs.describe_tasks(cluster=self.cluster, tasks=[arn]).get("tasks") or [{}]
        created = tasks[0].get("createdAt")
        return min(created.timestamp(), time.time()) if isinstance(created, datetime) else time.time()

    @staticmethod
    def _runtask_failures(error: EcsOperatorError) -> str:
        return "; ".join(" ".join(str(f[key]) for key in ("arn", "reason", "detail") if f.get(key))
                         for f in error.failures)

    # -- waiting in the worker

    def _run_one(self, context: Context, number: int) -> Attempt:
        """One ECS task, reattached or started, followed (its log lines too) until it stops or times out."""
        self.task_log_fetcher = None
        try:
            deadline = self._start(context, number)
        except EcsOperatorError as error:  # RunTask placed nothing: no capacity, no instance...
            return Attempt(number, NOT_PLACED, said=self._runtask_failures(error))
        if self._aws_logs_enabled():  # type: ignore[no-untyped-call]  # the provider's, unannotated
            self.task_log_fetcher = self._get_task_log_fetcher()
            self.task_log_fetcher.start()
        try:
            attempt = self._wait_until_stopped(deadline, number)
        finally:
            if self.task_log_fetcher:
                self.task_log_fetcher.stop()  # type: ignore[no-untyped-call]  # the provider's, unannotated
                self.task_log_fetcher.join()
        self.arn = None  # stopped: nothing for on_kill to stop while the next one waits
        return attempt

    def _wait_until_stopped(self, deadline: float, number: int) -> Attempt:
        """Polls DescribeTasks every waiter_delay seconds, and once at the deadline; a task still
        running then is stopped (what EsteiraEcsTaskTrigger does in the triggerer)."""
        arn = self.arn
        ecs: Any = self.client
        while True:
            response = ecs.describe_tasks(cluster=self.cluster, tasks=[arn])
            if not response.get("tasks"):
                raise AirflowException(f"step {self.task_id}: ECS does not describe task {arn}: "
                                       f"{response.get('failures')}")
            [task] = response["tasks"]
            if task.get("lastStatus") == "STOPPED":
                return Attempt(number, STOPPED, arn, task)
            remaining = deadline - time.time()
            if remaining <= 0:
                outcome = stop_task(ecs, self.cluster, str(arn), STOP_REASON)
                return Attempt(number, TIMED_OUT, arn, said=outcome, last_status=task.get("lastStatus"))
            time.sleep(min(self.waiter_delay, remaining))

    def _last_log_lines(self, count: int) -> list[str]:
        """The last `count` lines of this task's stream; none when there is no stream (the job wrote
        nothing, or the logs are off), which provider 9.8.0 raises as a ClientError."""
        if not self.task_log_fetcher or count <= 0:
            return []
        try:
            return self.task_log_fetcher.get_last_log_messages(count)
        except ClientError:
            return []

    # -- waiting in the triggerer (deferrable)

    def _try_deadline(self) -> float | None:
        """When this try must be over (epoch seconds): execution_timeout from its start."""
        return time.time() + self.execution_timeout.total_seconds() if self.execution_timeout else None

    @staticmethod
    def _trigger_timeout(state: dict[str, Any]) -> timedelta | None:
        """What is left of the try's execution_timeout: Airflow 3 does not count deferred time against
        it, so each deferral's trigger carries the rest (Airflow 2 takes the earlier of the two)."""
        deadline = state.get("try_deadline")
        return None if deadline is None else timedelta(seconds=max(0.0, deadline - time.time()))

    def _defer_to_task(self, context: Context, state: dict[str, Any]) -> NoReturn:
        """Starts (or reattaches) the state's ECS attempt and defers until it stops or times out; a
        RunTask that placed nothing is judged at once (a deferred wait, or the failure)."""
        number = state["attempt"]
        self.task_log_fetcher = None
        try:
            deadline = self._start(context, number)
        except EcsOperatorError as error:  # RunTask placed nothing: no capacity, no instance...
            delay = self._judge(context, Attempt(number, NOT_PLACED, said=self._runtask_failures(error)), _no_lines)
            assert delay is not None, "a task RunTask never started cannot have succeeded"
            self._defer_to_wait(delay, state)
        self.log.info("step %s: ECS task %s (attempt %d of %d) is awaited in the triggerer, stopped if still "
                      "running at %s", self.task_id, self._get_ecs_task_id(self.arn), number, 1 + self.infra_retries,
                      datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds"))
        self.defer(trigger=EsteiraEcsTaskTrigger(
            cluster=self.cluster, task_arn=str(self.arn), deadline=deadline, waiter_delay=self.waiter_delay,
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, state=state),
            method_name="resume_after_task", timeout=self._trigger_timeout(state))

    def _defer_to_wait(self, delay: float, state: dict[str, Any]) -> NoReturn:
        """The wait before the next ECS attempt, in the triggerer."""
        self.arn = None
        self.defer(trigger=EsteiraWaitTrigger(delay_seconds=delay, moment=time.time() + delay,
                                              state={**state, "attempt": state["attempt"] + 1}),
                   method_name="resume_after_wait", timeout=self._trigger_timeout(state))

    def resume_after_task(self, context: Context, event: dict[str, Any]) -> str | None:
        """A deferred ECS task stopped or timed out: its job's log lines into this log, then _judge."""
        state = event["state"]
        arn = event["task_arn"]
        lines = self._job_log(arn)
        attempt = Attempt(state["attempt"], event["ended"], arn, event.get("task"), event.get("stop_outcome", ""),
                          event.get("last_status"))
        delay = self._judge(context, attempt, lambda count: lines[-count:] if count > 0 else [])
        if delay is None:  # the provider's return value: the job's last log line
            return lines[-1] if self.do_xcom_push and lines else None
        self._defer_to_wait(delay, state)

    def resume_after_wait(self, context: Context, event: dict[str, Any]) -> NoReturn:
        """The wait after an infrastructure failure passed: the next ECS task of the try."""
        if self.reattach:
            self._started_by = self._reattach_key(context)
        self._defer_to_task(context, event["state"])

    def _job_log(self, arn: str) -> list[str]:
        """The ECS task's CloudWatch lines, logged here; none when the logs are off or there is no
        stream (the job wrote nothing). A deferred try reads them once the task has stopped."""
        if not self._aws_logs_enabled():  # type: ignore[no-untyped-call]  # the provider's, unannotated
            return []
        self.arn = arn  # the provider derives the stream's name from it
        stream = self._get_logs_stream_name()
        self.arn = None
        hook = AwsLogsHook(aws_conn_id=self.aws_conn_id, region_name=self.awslogs_region or self.region_name)
        try:
            events = list(hook.get_log_events(str(self.awslogs_group), stream))
        except ClientError as error:
            self.log.warning("no CloudWatch lines of ECS task %s (%s %s): %s", self._get_ecs_task_id(arn),
                             self.awslogs_group, stream, error)
            return []
        for event in events:
            self.log.info(AwsTaskLogFetcher.event_to_str(dict(event)))
        return [str(event["message"]) for event in events]

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow resumes a deferred task to fail it when its trigger's timeout passed (the try's
        execution_timeout): the try's running ECS task is stopped first, as on_kill stops it when
        execution_timeout fires in a worker. A trigger's error fails the try as an error in a
        worker does: the task runs on, and the next try reattaches to it."""
        if next_method == TRIGGER_FAIL and (next_kwargs or {}).get("error") in TRIGGER_TIMEOUT_ERRORS:
            self._stop_running_tasks(context)
        return super().resume_execution(next_method, next_kwargs, context)

    def _stop_running_tasks(self, context: Context) -> None:
        ecs: Any = self.client
        running = ecs.list_tasks(cluster=self.cluster, desiredStatus="RUNNING",
                                 startedBy=self._reattach_key(context))["taskArns"]
        self.log.warning("step %s: this try's execution_timeout passed while deferred; stopping its running "
                         "ECS task(s): %s", self.task_id, running or "none")
        for arn in running:
            self.arn = arn
            self.on_kill()
        self.arn = None


__all__ = ["STOP_REASON", "TASK_OVERHEAD_SECONDS", "ApplicationFailure", "Attempt", "EcsRunTaskOperator",
           "InfrastructureFailure", "StepTimeout", "try_timeout_seconds"]
