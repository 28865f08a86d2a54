"""Under Airflow 2.11 (MWAA's default backend, ecs), a run's notification reaches the SNS topic (moto).

The DAG callback is called as Airflow 2 calls it: with a context holding the scheduler's DagRun.
Region, account and topic name are read from the YAML files with plain PyYAML.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import yaml
from airflow.models.xcom import XCom
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
from airflow.utils.types import DagRunType
from moto import mock_aws

from conftest import PROJECTS
from esteira.airflow.factory import build_all
from esteira.airflow.run_failures import FAILURE_KEY
from esteira.notifications import failure_record
from esteira.settings import Settings

ENVIRONMENTS = yaml.safe_load((PROJECTS / "environments.yaml").read_text())
SCHEDULED = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
RUN_ID = "scheduled__2026-11-24T07:30:00+00:00"


@pytest.mark.usefixtures("airflow_db")
def test_failure_callback_publishes_the_run_message_to_the_projects_topic(
    projects_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airflow 2 (MWAA) calls DAG callbacks beside the metadata database: the run's failed tasks and
    the records their operators left (esteira.airflow.run_failures) are read from it."""
    project = next(name for name in sorted(p.parent.name for p in PROJECTS.glob("*/config.yaml"))
                   if yaml.safe_load((PROJECTS / name / "config.yaml").read_text())
                   .get("notifications", {}).get("on_failure"))
    dev = ENVIRONMENTS["dev"]
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://")
    monkeypatch.setenv("MOTO_ACCOUNT_ID", dev["account_id"])
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    monkeypatch.setenv("ESTEIRA_BACKEND", "ecs")
    with mock_aws():
        sns = boto3.client("sns", region_name=dev["region"])
        sqs = boto3.client("sqs", region_name=dev["region"])
        topic = sns.create_topic(Name=f"{project}-notifications")["TopicArn"]
        assert topic == f"arn:aws:sns:{dev['region']}:{dev['account_id']}:{project}-notifications"
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        dag = build_all(Settings.from_environ())[project]
        dag.sync_to_db()
        run = dag.create_dagrun(run_id=RUN_ID, run_type=DagRunType.SCHEDULED, execution_date=SCHEDULED,
                                data_interval=(SCHEDULED, SCHEDULED), state=DagRunState.FAILED)
        order = dag.on_failure_callback.order
        first, last = order[0], order[-1]  # both fail: the first left a record, the last did not
        record = failure_record(first, "application", exit_code=3, stop_code="EssentialContainerExited",
                                stopped_reason="Essential container in task exited", log=None)
        with create_session() as session:
            for step in (last, first):
                ti = run.get_task_instance(step, session=session)
                ti.set_state(TaskInstanceState.FAILED, session=session)
            XCom.set(key=FAILURE_KEY, value=record, task_id=first, dag_id=project, run_id=RUN_ID, session=session)
        dag.on_failure_callback({"dag_run": run, "dag": dag, "reason": "task_failure"})

        [received] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(received["Body"])
    assert envelope["Subject"] == f"[esteira] {project} (dev) FAILED"
    assert json.loads(envelope["Message"]) == {
        "project": project, "env": "dev", "status": "FAILED",
        "run_date": "2026-11-24T07:30:00Z", "run_id": RUN_ID,
        "failures": [record, failure_record(last, "unknown")]}
