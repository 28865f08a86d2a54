"""The S3 trigger on Airflow 3: the AssetWatcher's trigger reads the stack's queue (moto_server on
127.0.0.1), its event becomes one run per object with the values Step Functions gets, and that run's
steps see them; `esteira trigger` runs the same DAG on this machine for a key given by hand.

The triggerer itself is not started: the watcher's own trigger (`SqsSensorTrigger`, as the DAG
serializes it) runs its async `run()` against moto_server, and the dispatcher's code turns the
resulting event into the run TriggerDagRunOperator starts, which then runs through dag.test().
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from test_s3_trigger import TRIGGER

from esteira.airflow.factory import build_all
from esteira.airflow.s3_dispatch import runs_from_events
from esteira.plan import Target, build_plan
from esteira.s3_trigger import event_pattern
from esteira.settings import Settings

WRITE_ENV = ("import json, os, pathlib; d = pathlib.Path(os.environ['DATA_ROOT']); d.mkdir(parents=True, exist_ok=True); "
             "(d / '{}.json').write_text(json.dumps(dict(os.environ)))")
CONFIG = f"""\
project_name: landing
version: "1"
owners: {{tech_owner: a@rentcars.com, business_owner: b@rentcars.com}}
schedule: {{enabled: true, cron: "0 3 * * *", timeout_seconds: 600, retries: 0}}
runtime: {{python_version: "3.11"}}
batch:
  enabled: true
  orchestrator: airflow
  pipeline:
    steps:
      - {{id: load, name: Load, command: ["python", "-c", "{WRITE_ENV.format('load')}"], resources: {{cpu: 1, memory_gb: 1}}}}
      - {{id: score, name: Score, command: ["python", "-c", "{WRITE_ENV.format('score')}"], resources: {{cpu: 1, memory_gb: 1}}}}
infra: {{compute: {{provider: ec2, ec2_type: t3.small, min_quantity: 0, max_quantity: 1, spot: true}}}}
""" + TRIGGER
KEY = "incoming/2026-11-24/sales.parquet"


@pytest.fixture
def project(write_project: Callable[[str, str], Path]) -> Path:
    return write_project("landing", CONFIG)


def step_envs(project: Path) -> dict[str, dict[str, str]]:
    data = project.parent.parent.parent / ".esteira" / "data"
    return {p.stem: json.loads(p.read_text()) for p in data.glob("*.json")}


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto_server on 127.0.0.1, and the Airflow connection aws_default pointing at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}))
    yield endpoint
    server.stop()


def test_the_dag_of_an_airflow_owned_trigger_has_a_watcher_on_the_stacks_queue(
    project: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(project.parent.parent), "ESTEIRA_BACKEND": "ecs",
                                      "ESTEIRA_ENV": "prd"})
    dags = build_all(settings)
    assert set(dags) == {"landing", "landing__s3_trigger"}
    assert set(dags["landing"].params) == {"trigger_bucket", "trigger_key"}
    assert dags["landing"].timetable.__class__.__name__ == "EsteiraTimetable"  # the cron stays the DAG's own
    assert dags["landing"].is_paused_upon_creation is False  # the dispatcher's runs must start
    dispatcher = dags["landing__s3_trigger"]
    [asset] = dispatcher.timetable.asset_condition.objects  # type: ignore[attr-defined]
    [watcher] = asset.watchers
    path, kwargs = watcher.trigger.serialize()
    assert path == "airflow.providers.amazon.aws.triggers.sqs.SqsSensorTrigger"
    assert kwargs["sqs_queue"] == "https://sqs.us-east-1.amazonaws.com/222222222222/landing-s3-events"
    assert dispatcher.task_dict["start_runs"].partial_kwargs["trigger_dag_id"] == "landing"  # type: ignore[attr-defined]
    # what the DAG processor stores and the scheduler and triggerer read back
    from airflow.serialization.serialized_objects import DagSerialization

    back = DagSerialization.from_dict(DagSerialization.to_dict(dispatcher))
    assert back.timetable.__class__.__name__ == "AssetTriggeredTimetable"

    local = build_all(Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(project.parent.parent),
                                             "ESTEIRA_BACKEND": "local"}))
    assert set(local) == {"landing"}  # no queue on this machine: `esteira trigger` instead
    sfn_owned = project.read_text().replace("orchestrator: airflow", "orchestrator: step_functions")
    project.write_text(sfn_owned)
    assert set(build_all(settings)) == {"landing"}  # Step Functions owns production: its rule starts the runs


@pytest.mark.usefixtures("airflow_db")
def test_a_message_on_the_queue_makes_the_watcher_fire_and_the_run_gets_the_step_functions_values(
    project: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    envs = project.parent.parent / "environments.yaml"
    from esteira.config import load_project
    from esteira.environments import load_environments

    plan = build_plan(load_project(project), Target.aws_env(load_environments(envs), "dev"))
    assert plan.trigger is not None and plan.trigger.queue_url is not None
    # the stack's queue, rule (its pattern) and the bucket's EventBridge notifications, in moto_server
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    queue_url = sqs.create_queue(QueueName=plan.names.trigger_queue)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", endpoint_url=moto_server)
    events.put_rule(Name=plan.names.trigger_rule, EventPattern=json.dumps(
        event_pattern(plan.trigger.bucket, plan.trigger.prefix, plan.trigger.suffix)))
    events.put_targets(Rule=plan.names.trigger_rule, Targets=[{"Id": "airflow-queue", "Arn": queue_arn}])
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket=plan.trigger.bucket)
    s3.put_bucket_notification_configuration(Bucket=plan.trigger.bucket,
                                             NotificationConfiguration={"EventBridgeConfiguration": {}})
    s3.put_object(Bucket=plan.trigger.bucket, Key=KEY, Body=b"x")
    s3.put_object(Bucket=plan.trigger.bucket, Key="incoming/readme.txt", Body=b"x")  # not a .parquet

    # the watcher's trigger, as the dispatcher DAG holds it, reads the queue once
    dags = build_all(Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(project.parent.parent),
                                            "ESTEIRA_BACKEND": "ecs", "ESTEIRA_ENV": "dev"}))
    [asset] = dags["landing__s3_trigger"].timetable.asset_condition.objects  # type: ignore[attr-defined]
    trigger = asset.watchers[0].trigger
    assert trigger.sqs_queue == plan.trigger.queue_url
    trigger.wait_time_seconds = 0  # moto_server holds no long poll; the queue already has the message

    async def first_event() -> Any:
        async for event in trigger.run():
            return event
        return None

    fired = asyncio.run(asyncio.wait_for(first_event(), timeout=60))
    assert fired.payload["status"] == "success"
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages") is None  # consumed once

    # the asset event the triggerer records, and the one run the dispatcher starts from it
    asset_event = SimpleNamespace(extra={"from_trigger": True, "payload": fired.payload})
    [run] = runs_from_events([asset_event, asset_event])  # the same event twice (a redelivery): one run
    message = json.loads(fired.payload["message_batch"][0]["Body"])
    assert run == {"trigger_run_id": message["id"], "run_after": message["time"],
                   "conf": {"trigger_bucket": "rentcars-landing-dev", "trigger_key": KEY}}

    # that run, as TriggerDagRunOperator creates it (no logical date, run_after = the event's time)
    from datetime import datetime

    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(project.parent.parent))
    monkeypatch.setenv("ESTEIRA_BACKEND", "local")
    dag = build_all(Settings.from_environ())["landing"]
    when = datetime.fromisoformat(run["run_after"].replace("Z", "+00:00"))
    result = dag.test(run_after=when, logical_date=None, run_conf=run["conf"])
    assert result.state == "success"
    got = step_envs(project)
    assert set(got) == {"load", "score"}
    for env in got.values():
        assert (env["RUN_DATE"], env["TRIGGER_BUCKET"], env["TRIGGER_KEY"]) == (
            message["time"], "rentcars-landing-dev", KEY)
        assert env["RUN_ID"] == result.run_id


@pytest.mark.usefixtures("airflow_db")
def test_esteira_trigger_runs_the_dag_here_with_the_objects_values(project: Path) -> None:
    projects = project.parent.parent
    base = [sys.executable, "-m", "esteira", "trigger", "landing", "--projects-dir", str(projects)]
    env = {**os.environ}
    env.pop("ESTEIRA_PROJECTS_DIR", None)

    def esteira(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=600)

    done = esteira("--key", KEY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    got = step_envs(project)
    assert {(e["TRIGGER_BUCKET"], e["TRIGGER_KEY"]) for e in got.values()} == {("rentcars-landing-local", KEY)}
    assert len({e["RUN_ID"] for e in got.values()}) == 1

    done = esteira("--key", "incoming/notes.txt")
    assert done.returncode == 2
    assert "would not start a run: the trigger's keys start with 'incoming/' and end with '.parquet'" in done.stderr
    done = esteira("--key", KEY, "--bucket", "Bad_Bucket")
    assert done.returncode == 2 and "is not an S3 bucket name" in done.stderr
    assert "Traceback" not in done.stderr
    project.write_text(CONFIG.replace(TRIGGER, ""))
    done = esteira("--key", KEY)
    assert done.returncode == 2 and "has no trigger block" in done.stderr
    project.write_text(CONFIG.replace("cpu: 1,", "cpu: 0,", 1))
    done = esteira("--key", KEY)
    assert done.returncode == 2 and "batch.pipeline.steps[0].resources.cpu" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run([*base[:4], "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "TRIGGER_BUCKET" in done.stdout and "--key KEY" in done.stdout
