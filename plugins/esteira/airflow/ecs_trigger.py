"""The triggers of esteira's deferrable ECS steps: a step waits in Airflow's triggerer, not a worker slot.

The amazon provider's TaskDoneTrigger cannot serve: when its waiter runs out it fails the Airflow
task without stopping the ECS task, and it knows nothing of esteira's two budgets. These triggers
only wait; esteira.airflow.ecs_operator judges what they report, in the worker, with the one
function its non-deferrable path uses too.

* EsteiraEcsTaskTrigger: DescribeTasks every `waiter_delay` seconds until the task is STOPPED (the
  event carries what esteira.ecs_failures reads), or, at the task's `deadline`, StopTask with
  esteira's reason and a timeout event. The deadline is an instant in the trigger's kwargs (set
  before RunTask, or the task's createdAt plus the timeout when reattached), so a restarted
  triggerer, which rebuilds the trigger from serialize(), keeps it.
* EsteiraWaitTrigger: the wait before an infrastructure retry, until an instant in its kwargs.

Both echo `state` (the ECS attempt within the try, the try's deadline) in their event: dag.test()
resumes the task with the event alone, without the kwargs given to defer().

AWS is called with boto3 in a thread (asyncio.to_thread), not with the provider's aiobotocore hook:
aiobotocore is an optional extra of the amazon provider (the Airflow 2.11 environment, MWAA's newest
Airflow 2, has none), and moto cannot serve aiobotocore in process ("object bytes can't be used in
'await' expression"); one DescribeTasks per step every waiter_delay seconds is light work for the
thread pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from botocore.exceptions import ClientError

from esteira.airflow.compat import AirflowException, BaseTrigger, EcsHook, TriggerEvent

STOP_REASON = "esteira: step timeout"  # StopTask's reason when a task outlives task_timeout_seconds
# The provider's on_kill says this: a user's kill reads the same whichever way the step waits.
KILL_REASON = "Task killed by the user"
# What an ECS task event says happened (`ended`): esteira.airflow.ecs_operator.Attempt reads it.
STOPPED, TIMED_OUT = "stopped", "timed_out"
WAITED = "waited"


def stop_task(ecs: Any, cluster: str, task_arn: str, reason: str) -> str:
    """StopTask, and what came of it for the timeout's message (a refused StopTask is still a timeout)."""
    try:
        ecs.stop_task(cluster=cluster, task=task_arn, reason=reason)
    except ClientError as error:
        return f"StopTask failed, it may still run: {error}"
    return "stopped it"


def stopped_fields(task: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of a DescribeTasks description that esteira.ecs_failures.StoppedTask reads
    (the rest holds datetimes, which an event should not carry)."""
    keep = ("taskArn", "lastStatus", "stopCode", "stoppedReason")
    containers = [{k: c[k] for k in ("name", "lastStatus", "exitCode", "reason") if c.get(k) is not None}
                  for c in task.get("containers") or [] if isinstance(c, dict)]
    return {**{k: task[k] for k in keep if task.get(k) is not None}, "containers": containers}


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]  # Airflow's, unannotated


class EsteiraEcsTaskTrigger(BaseTrigger):
    """Watches one ECS task until it stops, and stops it at its deadline (see the module)."""

    def __init__(self, *, cluster: str, task_arn: str, deadline: float, waiter_delay: float,
                 aws_conn_id: str | None, region_name: str | None, state: dict[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's, unannotated
        self.cluster = cluster
        self.task_arn = task_arn
        self.deadline = deadline  # epoch seconds
        self.waiter_delay = waiter_delay
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.state = state

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{__name__}.{type(self).__qualname__}", {
            "cluster": self.cluster, "task_arn": self.task_arn, "deadline": self.deadline,
            "waiter_delay": self.waiter_delay, "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name, "state": self.state}

    def _client(self) -> Any:
        return EcsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).conn

    def _describe(self, ecs: Any) -> dict[str, Any]:
        response = ecs.describe_tasks(cluster=self.cluster, tasks=[self.task_arn])
        if not response.get("tasks"):  # as the non-deferrable wait: the try fails (retried, reattaching)
            raise AirflowException(f"ECS does not describe task {self.task_arn}: {response.get('failures')}")
        task: dict[str, Any] = response["tasks"][0]
        return task

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ecs = await asyncio.to_thread(self._client)
        while True:
            task = await asyncio.to_thread(self._describe, ecs)
            if task.get("lastStatus") == "STOPPED":
                yield _event({"ended": STOPPED, "task_arn": self.task_arn, "task": stopped_fields(task),
                                    "state": self.state})
                return
            remaining = self.deadline - time.time()
            if remaining <= 0:
                outcome = await asyncio.to_thread(stop_task, ecs, self.cluster, self.task_arn, STOP_REASON)
                self.log.warning("ECS task %s still %s at its deadline: %s", self.task_arn,
                                 task.get("lastStatus"), outcome)
                yield _event({"ended": TIMED_OUT, "task_arn": self.task_arn,
                                    "last_status": task.get("lastStatus"), "stop_outcome": outcome,
                                    "state": self.state})
                return
            await asyncio.sleep(min(self.waiter_delay, remaining))

    async def on_kill(self) -> None:
        """A user failed or cleared the deferred task (Airflow 3 calls this; 2.x has no such hook):
        stop the ECS task, as the provider's on_kill does for a task waiting in a worker."""
        outcome = await asyncio.to_thread(
            lambda: stop_task(self._client(), self.cluster, self.task_arn, KILL_REASON))
        self.log.info("ECS task %s: %s", self.task_arn, outcome)


class EsteiraWaitTrigger(BaseTrigger):
    """The wait before an infrastructure retry (esteira.ecs_failures.infra_delay_seconds), without a
    worker slot. Not Airflow's DateTimeTrigger: its event would not carry the operator's state."""

    def __init__(self, *, delay_seconds: float, moment: float, state: dict[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's, unannotated
        self.delay_seconds = delay_seconds  # what the operator asked for (the log, the tests)
        self.moment = moment  # epoch seconds: the wait ends then, whenever the trigger (re)starts
        self.state = state

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{__name__}.{type(self).__qualname__}", {
            "delay_seconds": self.delay_seconds, "moment": self.moment, "state": self.state}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(max(0.0, self.moment - time.time()))
        yield _event({"ended": WAITED, "state": self.state})


__all__ = ["KILL_REASON", "STOPPED", "STOP_REASON", "TIMED_OUT", "WAITED", "EsteiraEcsTaskTrigger",
           "EsteiraWaitTrigger", "stop_task", "stopped_fields"]
