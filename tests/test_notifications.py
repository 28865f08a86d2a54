"""Run notifications reach the project's SNS topic (moto), with the body and subject subscribers parse.

The DAGs are the real ones (esteira's factory, ecs backend) and the callbacks are called the way
Airflow calls them: directly with a context holding a dag run, and through the DAG processor's own
callback runner. Expectations (region, account, topic name) are read from the YAML files with
plain PyYAML, independently of esteira's model. The SQS queue subscribed to the topic receives the
SNS envelope, so the test sees what an e-mail or chat subscriber would.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
import yaml
from airflow.api_fastapi.execution_api.datamodels.taskinstance import TaskInstance as TaskInstanceModel
from airflow.callbacks.callback_requests import DagCallbackRequest, DagRunContext
from airflow.dag_processing.dagbag import DagBag
from airflow.dag_processing.processor import _execute_dag_callbacks
from airflow.models.dagrun import DagRun
from moto import mock_aws

from conftest import DAGS, PROJECTS
from esteira.airflow.factory import build_all
from esteira.settings import Settings

ENVIRONMENTS = yaml.safe_load((PROJECTS / "environments.yaml").read_text())
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # what EventBridge's scheduled-time looks like

# churn's cron is "30 4 * * MON-FRI" in America/Sao_Paulo: 04:30 there is 07:30 UTC.
SCHEDULED = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
ASKED_AT = datetime(2026, 11, 25, 13, 14, 15, 123456, tzinfo=UTC)  # when someone pressed "trigger"

Queues = dict[str, str]  # project -> SQS queue URL subscribed to its topic

# a failure callback reads the run's failed tasks from Airflow (esteira.airflow.run_failures)
pytestmark = pytest.mark.usefixtures("airflow_db")


def make_dag_run(kind: str, dag_id: str, run_id: str, run_type: str,
                 logical_date: datetime | None, run_after: datetime) -> Any:
    """A dag run as Airflow hands it to callbacks: the scheduler's ORM row, or the execution-API model
    the DAG processor puts in the callback context (Airflow 3.3)."""
    orm = DagRun(dag_id=dag_id, run_id=run_id, run_type=run_type, logical_date=logical_date,
                 run_after=run_after, state="running",
                 data_interval=(logical_date, logical_date) if logical_date else None)
    orm.start_date = run_after
    if kind == "orm":
        return orm
    # The same conversion Airflow does when it builds a DagCallbackRequest from the ORM row.
    return DagRunContext(dag_run=orm).dag_run


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Fake credentials, `aws_default` resolvable with no metadata DB, moto in the env's account.

    MOTO_ACCOUNT_ID is read by moto on every request, so switching env (account) mid-test works.
    AIRFLOW_CONN_AWS_DEFAULT makes the hook find its connection in the environment rather than
    fall back (with a warning) after missing it.
    """
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", ENVIRONMENTS["dev"]["region"])
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://")

    def use_env(env: str) -> None:
        monkeypatch.setenv("MOTO_ACCOUNT_ID", ENVIRONMENTS[env]["account_id"])

    use_env("dev")
    return use_env


@pytest.fixture
def moto(aws: Callable[[str], None]) -> Iterator[Callable[[str], None]]:
    with mock_aws():
        yield aws


def subscribe(env: str, projects: list[str]) -> Queues:
    """Create each project's topic in the env's account and region, with an SQS queue subscribed."""
    region, account = ENVIRONMENTS[env]["region"], ENVIRONMENTS[env]["account_id"]
    sns = boto3.client("sns", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    queues = {}
    for project in projects:
        topic = sns.create_topic(Name=f"{project}-notifications")["TopicArn"]
        assert topic == f"arn:aws:sns:{region}:{account}:{project}-notifications"
        url = sqs.create_queue(QueueName=f"{project}-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        queues[project] = url
    return queues


def received(queue_url: str, env: str = "dev") -> list[dict[str, Any]]:
    """The SNS envelopes in the queue (TopicArn, Subject, Message...), removed from it."""
    sqs = boto3.client("sqs", region_name=ENVIRONMENTS[env]["region"])
    out = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return out


def ecs_dags(projects_dir: Path, env: str = "dev") -> dict[str, Any]:
    return build_all(Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(projects_dir),
                                            "ESTEIRA_BACKEND": "ecs", "ESTEIRA_ENV": env}))


def expect(envelope: dict[str, Any], env: str, project: str, status: str, run_date: str, run_id: str,
           failures: list[dict[str, Any]] | None = None) -> None:
    """The message; a FAILED one lists the run's failed steps (none here: these runs exist only in the
    callback's context, the metadata database has no task of theirs)."""
    region, account = ENVIRONMENTS[env]["region"], ENVIRONMENTS[env]["account_id"]
    assert envelope["TopicArn"] == f"arn:aws:sns:{region}:{account}:{project}-notifications"
    assert envelope["Subject"] == f"[esteira] {project} ({env}) {status}"
    body = json.loads(envelope["Message"])
    expected: dict[str, Any] = {"project": project, "env": env, "status": status, "run_date": run_date,
                                "run_id": run_id}
    if status == "FAILED":
        expected["failures"] = failures or []
    assert body == expected
    assert ISO_UTC.match(body["run_date"])


@pytest.mark.parametrize("kind", ["orm", "execution_api"])
@pytest.mark.parametrize("env", ["dev", "prd"])
def test_failure_of_a_scheduled_run_is_published_to_the_projects_topic(
    projects_dir: Path, moto: Callable[[str], None], env: str, kind: str,
) -> None:
    moto(env)
    queues = subscribe(env, ["churn", "recsys"])
    dag = ecs_dags(projects_dir, env)["churn"]
    run_id = f"scheduled__{SCHEDULED.isoformat()}"
    run = make_dag_run(kind, "churn", run_id, "scheduled", SCHEDULED, SCHEDULED)

    dag.on_failure_callback({"dag": dag, "dag_run": run, "run_id": run_id, "reason": "task_failure"})

    [envelope] = received(queues["churn"], env)
    expect(envelope, env, "churn", "FAILED", "2026-11-24T07:30:00Z", run_id)
    assert received(queues["recsys"], env) == []  # only the project's own topic


@pytest.mark.parametrize("kind", ["orm", "execution_api"])
def test_manual_run_without_logical_date_reports_when_it_was_asked_for(
    projects_dir: Path, moto: Callable[[str], None], kind: str,
) -> None:
    queues = subscribe("dev", ["recsys"])
    dag = ecs_dags(projects_dir)["recsys"]
    run_id = f"manual__{ASKED_AT.isoformat()}"
    run = make_dag_run(kind, "recsys", run_id, "manual", None, ASKED_AT)
    assert run.logical_date is None

    dag.on_success_callback({"dag": dag, "dag_run": run, "run_id": run_id, "reason": "success"})

    [envelope] = received(queues["recsys"])
    expect(envelope, "dev", "recsys", "SUCCEEDED", "2026-11-25T13:14:15Z", run_id)


def test_backfill_reports_its_logical_date_not_when_it_ran(projects_dir: Path, moto: Callable[[str], None]) -> None:
    queues = subscribe("dev", ["recsys"])
    dag = ecs_dags(projects_dir)["recsys"]
    run_id = f"backfill__{SCHEDULED.isoformat()}"
    run = make_dag_run("execution_api", "recsys", run_id, "backfill", SCHEDULED, ASKED_AT)

    dag.on_failure_callback({"dag": dag, "dag_run": run, "run_id": run_id, "reason": "task_failure"})

    [envelope] = received(queues["recsys"])
    expect(envelope, "dev", "recsys", "FAILED", "2026-11-24T07:30:00Z", run_id)


def test_one_callback_serves_many_runs(projects_dir: Path, moto: Callable[[str], None]) -> None:
    """Notifiers render their fields in place: a callback reused for a second run must not resend the first."""
    queues = subscribe("dev", ["churn"])
    dag = ecs_dags(projects_dir)["churn"]
    first = make_dag_run("execution_api", "churn", "scheduled__1", "scheduled", SCHEDULED, SCHEDULED)
    second = make_dag_run("execution_api", "churn", "manual__2", "manual", None, ASKED_AT)

    for run in (first, second):
        dag.on_failure_callback({"dag": dag, "dag_run": run, "run_id": run.run_id})

    bodies = [json.loads(e["Message"]) for e in received(queues["churn"])]
    assert sorted((b["run_id"], b["run_date"]) for b in bodies) == [
        ("manual__2", "2026-11-25T13:14:15Z"), ("scheduled__1", "2026-11-24T07:30:00Z")]


def test_callbacks_exist_only_for_the_lists_that_are_not_empty(projects_dir: Path) -> None:
    configs = {p.parent.name: yaml.safe_load(p.read_text()) for p in projects_dir.glob("*/config.yaml")}
    assert not configs["churn"]["notifications"].get("on_success")  # the case this test is about
    dags = ecs_dags(projects_dir)
    for project, cfg in configs.items():
        assert (dags[project].on_success_callback is not None) == bool(cfg["notifications"].get("on_success"))
        assert (dags[project].on_failure_callback is not None) == bool(cfg["notifications"].get("on_failure"))


def test_local_backend_logs_the_message_and_publishes_nothing(
    projects_dir: Path, moto: Callable[[str], None], caplog: pytest.LogCaptureFixture,
) -> None:
    queues = subscribe("dev", ["recsys"])
    dag = build_all(Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(projects_dir),
                                           "ESTEIRA_BACKEND": "local"}))["recsys"]
    run_id = f"scheduled__{SCHEDULED.isoformat()}"
    run = make_dag_run("execution_api", "recsys", run_id, "scheduled", SCHEDULED, SCHEDULED)

    with caplog.at_level(logging.INFO, logger="esteira"):
        dag.on_failure_callback({"dag": dag, "dag_run": run, "run_id": run_id})

    assert received(queues["recsys"]) == []
    [record] = [r for r in caplog.records if r.name == "esteira"]
    text = record.getMessage()
    assert "[esteira] recsys (local) FAILED" in text
    assert json.loads(text[text.index("{"):]) == {
        "project": "recsys", "env": "local", "status": "FAILED", "run_date": "2026-11-24T07:30:00Z",
        "run_id": run_id, "failures": []}


def processor_callback(monkeypatch: pytest.MonkeyPatch, projects_dir: Path, run_id: str,
                       context: DagRunContext | None) -> None:
    """Run churn's failure callback as Airflow 3.3's DAG processor does, from the real dags/ folder."""
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    monkeypatch.setenv("ESTEIRA_BACKEND", "ecs")
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    request = DagCallbackRequest(filepath="esteira_dags.py", bundle_name="dags-folder", bundle_version=None,
                                 dag_id="churn", run_id=run_id, context_from_server=context,
                                 is_failure_callback=True, msg="task_failure")
    _execute_dag_callbacks(bag, request, structlog.get_logger())  # logs (never raises) a failing callback


def test_the_dag_processors_callback_runner_publishes(
    projects_dir: Path, moto: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    queues = subscribe("dev", ["churn"])
    run_id = f"scheduled__{SCHEDULED.isoformat()}"
    run = make_dag_run("orm", "churn", run_id, "scheduled", SCHEDULED, SCHEDULED)
    last_ti = TaskInstanceModel(id=uuid.uuid4(), task_id="score", dag_id="churn", run_id=run_id,
                                try_number=1, dag_version_id=uuid.uuid4())

    processor_callback(monkeypatch, projects_dir, run_id, DagRunContext(dag_run=run, last_ti=last_ti))

    [envelope] = received(queues["churn"])
    expect(envelope, "dev", "churn", "FAILED", "2026-11-24T07:30:00Z", run_id)


def test_failure_is_notified_even_with_airflows_minimal_callback_context(
    projects_dir: Path, moto: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    queues = subscribe("dev", ["churn"])
    run_id = f"scheduled__{SCHEDULED.isoformat()}"

    processor_callback(monkeypatch, projects_dir, run_id, None)

    [envelope] = received(queues["churn"])
    assert envelope["Subject"] == "[esteira] churn (dev) FAILED"
    body = json.loads(envelope["Message"])
    assert {k: body[k] for k in ("project", "env", "status", "run_id")} == {
        "project": "churn", "env": "dev", "status": "FAILED", "run_id": run_id}
    assert body["run_date"] == "2026-11-24T07:30:00Z"  # recovered from the run id Airflow generated
