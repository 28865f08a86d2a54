"""Why a run's steps failed, read back by the DAG's failure callback.

esteira's operators leave each failed try's record (esteira.notifications.failure_record) as an
XCom under FAILURE_KEY, and Airflow clears a task's XComs when a new try starts, so what is left at
the end is the last try's: the one the state machine reports too. The callback reads the run's
failed tasks and their records where Airflow lets it:

* Airflow 3's DAG processor runs callbacks in a child that talks to it through the task SDK's
  supervisor channel (task states and XComs are among the calls it serves);
* `dag.test()` (Airflow 3) and every Airflow 2 callback run beside the metadata database: the ORM.
"""

from __future__ import annotations

import logging
from typing import Any

from esteira.airflow.compat import AIRFLOW_3

FAILURE_KEY = "esteira_failure"
FAILED = "failed"  # Airflow's TaskInstanceState.FAILED (upstream_failed steps did not fail themselves)

log = logging.getLogger("esteira")


def failed_steps(dag_id: str, run_id: str) -> dict[str, dict[str, Any] | None]:
    """task id -> the record it left (None when it left none), for the run's failed tasks."""
    if AIRFLOW_3 and _supervisor_channel():
        return _from_task_sdk(dag_id, run_id)
    return _from_database(dag_id, run_id)


def _supervisor_channel() -> bool:
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def _from_task_sdk(dag_id: str, run_id: str) -> dict[str, dict[str, Any] | None]:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
    from airflow.sdk.execution_time.xcom import XCom

    states: dict[str, Any] = RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id, {})
    return {task_id: _record(XCom.get_one(key=FAILURE_KEY, dag_id=dag_id, task_id=task_id, run_id=run_id))
            for task_id, state in states.items() if state == FAILED}


def _from_database(dag_id: str, run_id: str) -> dict[str, dict[str, Any] | None]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        task_ids = session.scalars(select(TaskInstance.task_id).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.state == FAILED)).all()
        return {task_id: _record(_xcom_from_database(session, dag_id, task_id, run_id)) for task_id in task_ids}


def _xcom_from_database(session: Any, dag_id: str, task_id: str, run_id: str) -> Any:
    if AIRFLOW_3:
        from airflow.models.xcom import XComModel

        row = session.scalars(XComModel.get_many(key=FAILURE_KEY, dag_ids=dag_id, task_ids=task_id,
                                                 run_id=run_id)).first()
        return None if row is None else XComModel.deserialize_value(row)
    from airflow.models.xcom import XCom  # pragma: no cover - Airflow 2 (tests_airflow2)

    return XCom.get_one(key=FAILURE_KEY, dag_id=dag_id, task_id=task_id, run_id=run_id,  # pragma: no cover
                        session=session)


def _record(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
