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

Airflow's `execution_timeout` is the outer guard around a whole try (try_timeout_seconds); when it
fires, the provider's on_kill stops the ECS task then running. The budget is per try: a retried try
starts again with `infra_retries`.

Reattach: the provider looks for a RUNNING task whose `startedBy` is a hash of the task instance
(dag, task, run, map index: the same for every try), so a restarted worker picks up the task its
previous try left running. Only the try's first task does so; a stopped task is never RUNNING, so a
new try, or a retry after an infrastructure failure, always starts a new task. The awslogs reader
is the provider's, one per ECS task (each task has its own log stream).

Not deferrable: the budgets and the per-task timeout run in the worker.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from time import sleep  # the wait between infrastructure retries (tests replace it)
from typing import Any

from botocore.exceptions import ClientError

from esteira.airflow import compat
from esteira.airflow.compat import AirflowException, AirflowFailException, Context, EcsOperatorError, generate_uuid
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

STOP_REASON = "esteira: step timeout"  # StopTask's reason when a task outlives task_timeout_seconds
class InfrastructureFailure(AirflowFailException):
    """The platform failed the step's every ECS task of this try: not the job's fault, and already
    retried `infra_retries` times, so Airflow must not retry it on the job's budget."""


class ApplicationFailure(AirflowException):
    """The job failed (non-zero exit code, out of memory...): Airflow retries it (`retries`)."""


class StepTimeout(AirflowException):
    """An ECS task outlived task_timeout_seconds and was stopped: Airflow retries it (`retries`)."""


class EcsRunTaskOperator(compat.EcsRunTaskOperator):
    """The provider's operator (its RunTask, reattach, log reader and on_kill), with an execute that
    spends the infrastructure budget within the try and times out each ECS task.

    Named as the provider's class: the UI, the MWAA bundle check and people know the step as one.
    """

    def __init__(self, *, task_timeout_seconds: int, infra_retries: int = 0, infra_retry_delay_seconds: int = 60,
                 **kwargs: Any) -> None:
        if kwargs.get("deferrable") or kwargs.get("wait_for_completion") is False:
            raise ValueError("esteira's ECS steps wait in the worker: deferrable and wait_for_completion=False "
                             "would bypass their infrastructure retries and per-task timeout")
        # explicit, or [operators] default_deferrable (the provider's default) could turn it on
        super().__init__(deferrable=False, **{k: v for k, v in kwargs.items() if k != "deferrable"})
        self.task_timeout_seconds = task_timeout_seconds
        self.infra_retries = infra_retries
        self.infra_retry_delay_seconds = infra_retry_delay_seconds

    def execute(self, context: Context) -> str | None:
        attempts = 1 + self.infra_retries
        self.log.info("ECS task definition %s on cluster %s: up to %d ECS task(s) in this try, %ss each",
                      self.task_definition, self.cluster, attempts, self.task_timeout_seconds)
        if self.reattach:
            ti = context["ti"]
            self._started_by = generate_uuid(*map(str, (ti.dag_id, ti.task_id, ti.run_id, ti.map_index)))
        for attempt in range(1, attempts + 1):
            try:
                task = self._run_one(context, attempt, attempts)
            except EcsOperatorError as error:  # RunTask placed nothing: no capacity, no instance...
                said = "RunTask failures: " + "; ".join(
                    " ".join(str(f[key]) for key in ("arn", "reason", "detail") if f.get(key))
                    for f in error.failures)
                record = failure_record(self.task_id, INFRASTRUCTURE, stopped_reason=NO_TASK)
            except StepTimeout:
                self._leave_record(context, failure_record(self.task_id, TIMEOUT))
                raise
            else:
                stopped = StoppedTask.from_description(task)
                if stopped.succeeded:
                    self.log.info("step %s: ECS task %s succeeded (attempt %d of %d)",
                                  self.task_id, self._get_ecs_task_id(task["taskArn"]), attempt, attempts)
                    # the provider's return value: the job's last log line
                    return next(iter(self._last_log_lines(1)), None) if self.do_xcom_push else None
                said = f"ECS task {self._get_ecs_task_id(task['taskArn'])}: {stopped.describe()}"
                record = stopped_task_record(self.task_id, stopped.classification(), stopped,
                                             self._log_link(task["taskArn"]))
                if stopped.classification() == APPLICATION:
                    self._leave_record(context, record)
                    raise ApplicationFailure(f"step {self.task_id}: {APPLICATION} failure on attempt {attempt} "
                                             f"of {attempts} ({said}){self._last_logs()}")
            if attempt == attempts:
                self._leave_record(context, record)
                raise InfrastructureFailure(
                    f"step {self.task_id}: {INFRASTRUCTURE} failure on all {attempts} ECS task attempt(s) "
                    f"(infra_retries {self.infra_retries}), not retried by Airflow; the last: {said}")
            delay = infra_delay_seconds(self.infra_retry_delay_seconds, attempt)
            self.log.warning("step %s: %s failure on attempt %d of %d (%s); a new ECS task in %gs",
                             self.task_id, INFRASTRUCTURE, attempt, attempts, said, delay)
            sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _run_one(self, context: Context, attempt: int, attempts: int) -> dict[str, Any]:
        """One ECS task, reattached (the try's first, if one is running) or started, until it stops
        or times out; returns its DescribeTasks description once STOPPED."""
        self.arn = None
        self.task_log_fetcher = None
        if attempt == 1 and self.reattach and self._started_by:
            self.log.info("looking for a running ECS task with startedBy=%r", self._started_by)
            self._try_reattach_task(started_by=self._started_by)
        deadline = None if self.arn else time.monotonic() + self.task_timeout_seconds
        if not self.arn:  # _start_task raises EcsOperatorError when RunTask reports failures
            self._start_task()  # type: ignore[no-untyped-call]  # the provider's, unannotated
        if self.do_xcom_push:
            context["ti"].xcom_push(key="ecs_task_arn", value=self.arn)
        if self._aws_logs_enabled():  # type: ignore[no-untyped-call]  # the provider's, unannotated
            self.task_log_fetcher = self._get_task_log_fetcher()
            self.task_log_fetcher.start()
        try:
            task = self._wait_until_stopped(deadline, attempt, attempts)
        finally:
            if self.task_log_fetcher:
                self.task_log_fetcher.stop()  # type: ignore[no-untyped-call]  # the provider's, unannotated
                self.task_log_fetcher.join()
        self.arn = None  # stopped: nothing for on_kill to stop while the next one waits
        return task

    def _wait_until_stopped(self, deadline: float | None, attempt: int, attempts: int) -> dict[str, Any]:
        """Polls DescribeTasks every waiter_delay seconds, and once at the deadline; a task still
        running then is stopped (StepTimeout). A reattached task's deadline counts from its createdAt."""
        arn = self.arn
        ecs: Any = self.client  # the provider annotates it `boto3.client`, a function, not a type
        task: dict[str, Any]
        while True:
            response = ecs.describe_tasks(cluster=self.cluster, tasks=[arn])
            if not response.get("tasks"):
                raise AirflowException(f"step {self.task_id}: ECS does not describe task {arn}: "
                                       f"{response.get('failures')}")
            [task] = response["tasks"]
            if task.get("lastStatus") == "STOPPED":
                return task
            if deadline is None:  # reattached: the time it has run already counts
                created = task.get("createdAt")
                ran = (datetime.now(UTC) - created).total_seconds() if isinstance(created, datetime) else 0.0
                deadline = time.monotonic() + self.task_timeout_seconds - max(ran, 0.0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome = "stopped it"
                try:
                    ecs.stop_task(cluster=self.cluster, task=arn, reason=STOP_REASON)
                except ClientError as error:  # still a timeout; say the task may be running
                    outcome = f"StopTask failed, it may still run: {error}"
                raise StepTimeout(
                    f"step {self.task_id}: {TIMEOUT}: ECS task {self._get_ecs_task_id(arn)} was still "
                    f"{task.get('lastStatus')} after timeout_seconds {self.task_timeout_seconds} "
                    f"(attempt {attempt} of {attempts}); {outcome}")
            time.sleep(min(self.waiter_delay, remaining))

    def _log_link(self, task_arn: str) -> str | None:
        """The CloudWatch console's page of the task's log stream, as the state machine links it."""
        if not (self.awslogs_group and self.awslogs_region and self.awslogs_stream_prefix):
            return None
        return log_stream_url(self.awslogs_region, self.awslogs_group, self.awslogs_stream_prefix, task_arn)

    def _leave_record(self, context: Context, record: dict[str, Any]) -> None:
        """What the run's failure notification lists for this step (esteira.airflow.run_failures)."""
        context["ti"].xcom_push(key=FAILURE_KEY, value=record)

    def _last_logs(self) -> str:
        """The job's last CloudWatch lines, as the provider adds them to its failure message."""
        lines = self._last_log_lines(self.number_logs_exception)
        return f"; its last {len(lines)} log line(s):\n" + "\n".join(lines) if lines else ""

    def _last_log_lines(self, count: int) -> list[str]:
        """The last `count` lines of this task's stream; none when there is no stream (the job wrote
        nothing, or the logs are off), which provider 9.8.0 raises as a ClientError."""
        if not self.task_log_fetcher or count <= 0:
            return []
        try:
            return self.task_log_fetcher.get_last_log_messages(count)
        except ClientError:
            return []


__all__ = ["STOP_REASON", "TASK_OVERHEAD_SECONDS", "ApplicationFailure", "EcsRunTaskOperator",
           "InfrastructureFailure", "StepTimeout", "try_timeout_seconds"]
