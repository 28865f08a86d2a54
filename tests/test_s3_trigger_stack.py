"""Issue 14's proof on the local stack: a message on the queue starts exactly one DAG run.

The compose stack's Airflow (PostgreSQL, api-server, scheduler, dag-processor and triggerer, as
real processes: stack_helpers) runs an Airflow-owned project with an S3 trigger, with the `ecs`
backend and the `dev` environment, so the DAG file builds the dispatcher `<project>__s3_trigger`
whose AssetWatcher reads the project's SQS queue. AWS is moto_server on 127.0.0.1 (account and
region of environments.yaml's dev), where the queue is created under the name and URL esteira's
plan gives it. One S3 "Object Created" event is put on the queue as the stack's EventBridge rule
delivers it (the event JSON as the message body); the triggerer's watcher turns it into an asset
event, the scheduler starts the dispatcher, and its mapped TriggerDagRunOperator starts the
project's run. Then the same message is delivered again: the dispatcher runs again and starts
nothing; and two objects' events sent together start a run each. The project's own runs are not
waited for (their ECS steps cannot run against moto): only the environment Airflow renders for the
first step's ECS task is read. The project's cron is switched off, so that nothing else starts runs.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import yaml

from esteira.config import load_project
from esteira.environments import AwsEnvironment, load_environments
from esteira.plan import Plan, Target, build_plan
from stack_helpers import (
    REPO,
    VENV_BIN,
    Addresses,
    AirflowApi,
    Postgres,
    Processes,
    airflow_argv,
    compose_airflow_env,
    free_port,
    http_get,
    http_json,
    load_compose,
    missing_setup,
    postgres_bin,
    run_airflow_init,
    shared_tempdir,
    start_compose_postgres,
    user_dotenv,
    wait_until,
)

pytestmark = pytest.mark.stack

PROJECT = "recsys"
ENV = "dev"
EVENT = REPO / "tests" / "fixtures" / "s3_object_created_event.json"
KEY = "incoming/2026-11-24/sales.parquet"
TRIGGER = {"s3": {"bucket": "rentcars-landing-{env}", "prefix": "incoming/", "suffix": ".parquet"}}
WAIT = 120  # seconds, at most, for each thing the test waits for once the stack is up


def project_config() -> str:
    """projects/recsys, owned by Airflow, cut to its first step (never run here), with a trigger;
    its cron switched off, so that only the event can start a run while the test watches."""
    cfg = yaml.safe_load((REPO / "projects" / PROJECT / "config.yaml").read_text())
    cfg["schedule"]["enabled"] = False
    cfg["batch"]["orchestrator"] = "airflow"
    cfg["batch"]["pipeline"]["steps"] = cfg["batch"]["pipeline"]["steps"][:1]
    cfg.pop("notifications", None)
    cfg["trigger"] = TRIGGER
    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)


def s3_event(plan: Plan, dev: AwsEnvironment, key: str = KEY, event_id: str | None = None,
             when: str | None = None) -> dict[str, Any]:
    """The AWS documentation's "Object Created" event (the fixture), as S3 would send it for an
    object of this project's bucket, now, in dev's account and region."""
    assert plan.trigger is not None
    event: dict[str, Any] = json.loads(EVENT.read_text())
    event |= {"account": dev.account_id, "region": dev.region, "resources": [f"arn:aws:s3:::{plan.trigger.bucket}"],
              "time": when or now()}
    if event_id:
        event["id"] = event_id
    event["detail"]["bucket"]["name"] = plan.trigger.bucket
    event["detail"]["object"]["key"] = key
    return event


def now() -> str:
    """An EventBridge event's `time`: UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_environment(rendered_fields: dict[str, Any]) -> dict[str, str]:
    """{name: value} of the container environment in an ECS task's rendered `overrides`."""
    found: dict[str, str] = {}
    overrides = rendered_fields.get("overrides") or {}
    for container in overrides.get("containerOverrides", []) if isinstance(overrides, dict) else []:
        found.update({e["name"]: e["value"] for e in container.get("environment", [])})
    return found


@dataclass
class TriggerStack(AirflowApi):
    addr: Addresses
    processes: Processes
    postgres: Postgres
    moto: str
    plan: Plan
    queue_url: str
    dev: AwsEnvironment
    username: str
    password: str

    def sqs(self) -> Any:
        return boto3.client("sqs", endpoint_url=self.moto, region_name=self.dev.region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        url = f"{self.api}/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100"
        return list(http_json("GET", url, token=self.token())["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        url = f"{self.api}/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
        return list(http_json("GET", url, token=self.token())["task_instances"])

    def diagnostics(self) -> str:
        return self.processes.tails(80) + "\n" + self.postgres.log_tail()


@pytest.fixture(scope="module")
def trigger_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TriggerStack]:
    """moto_server, PostgreSQL and Airflow's four components; every one stopped afterwards."""
    if postgres_bin() is None:
        missing_setup("PostgreSQL server (Debian package postgresql)")
    if importlib.util.find_spec("psycopg2") is None:
        missing_setup("Python package psycopg2")
    out = tmp_path_factory.mktemp("trigger-stack")
    logs = out / "logs"
    logs.mkdir()
    pg_root = shared_tempdir("esteira-trigger-pg-")
    addr = Addresses(postgres_port=free_port(), mlflow_port=free_port(), api_port=free_port(),
                     scheduler_health_port=free_port(), airflow_home=out / "airflow",
                     mlflow_artifacts=out / "mlflow-artifacts")
    compose = load_compose()
    values = user_dotenv()
    processes = Processes(logs)
    postgres = Postgres(postgres_bin(), pg_root, addr.postgres_port)  # type: ignore[arg-type]
    try:
        # the project, and the plan's names for what the stack creates on AWS
        projects = out / "projects"
        (projects / PROJECT).mkdir(parents=True)
        (projects / PROJECT / "config.yaml").write_text(project_config())
        (projects / "environments.yaml").write_text(
            (REPO / "projects" / "environments.yaml").read_text().replace("home: ../.esteira", "home: ../home"))
        environments = load_environments(projects / "environments.yaml")
        plan = build_plan(load_project(projects / PROJECT / "config.yaml"), Target.aws_env(environments, ENV))
        assert plan.trigger is not None and plan.trigger.queue_url is not None
        dev = environments.aws(ENV)

        # AWS: moto_server in dev's account (queue URLs then hold dev's account id, as the plan's does)
        moto_port = free_port()
        moto = f"http://127.0.0.1:{moto_port}"
        processes.start("moto_server", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                        {"PATH": "/usr/bin:/bin", "MOTO_ACCOUNT_ID": dev.account_id}, cwd=out)
        start_compose_postgres(postgres, compose, addr, values)
        wait_until(lambda: http_get(f"{moto}/moto-api/")[0] == 200, 60, "moto_server", processes.tails)
        sqs = boto3.client("sqs", endpoint_url=moto, region_name=dev.region,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        queue_url = sqs.create_queue(QueueName=plan.names.trigger_queue)["QueueUrl"]
        assert urllib.parse.urlparse(queue_url).path == urllib.parse.urlparse(plan.trigger.queue_url).path

        aws = {"AWS_ENDPOINT_URL": moto, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": dev.region, "AWS_EC2_METADATA_DISABLED": "true",
               # environments.yaml's aws_conn_id for dev
               f"AIRFLOW_CONN_{dev.aws_conn_id.upper()}": json.dumps({
                   "conn_type": "aws", "login": "testing", "password": "testing",
                   "extra": {"endpoint_url": moto, "region_name": dev.region}})}
        airflow_env = compose_airflow_env(
            compose, addr, values, ESTEIRA_BACKEND="ecs", ESTEIRA_ENV=ENV, ESTEIRA_PROJECTS_DIR=str(projects),
            ESTEIRA_CACHE_DIR=str(out / "esteira-cache"), **aws)
        init_env = run_airflow_init(compose, addr, values, airflow_env)
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            processes.start(component, airflow_argv(component, addr), airflow_env, cwd=out)
        started = TriggerStack(addr, processes, postgres, moto, plan, queue_url, dev,
                               init_env["AIRFLOW_ADMIN_USER"], init_env["AIRFLOW_ADMIN_PASSWORD"])

        def api_ready() -> bool:
            processes.check_alive()
            return http_get(f"{started.api}/api/v2/monitor/health")[0] == 200

        wait_until(api_ready, 180, "Airflow api-server", started.diagnostics)
        yield started
    except BaseException:
        print(processes.tails(80) + "\n" + postgres.log_tail(), file=sys.stderr)
        raise
    finally:
        print(f"\ntrigger stack stopped (seconds per service): {processes.stop_all()}")
        postgres.stop()
        shutil.rmtree(pg_root, ignore_errors=True)


def test_a_message_on_the_queue_starts_exactly_one_run_with_the_events_values(trigger_stack: TriggerStack) -> None:
    stack = trigger_stack
    plan = stack.plan
    project, dispatcher = plan.names.dag_id, plan.names.trigger_dag_id
    started = time.monotonic()

    def parsed() -> bool:
        stack.processes.check_alive()
        token = stack.token()
        return all(http_get(f"{stack.api}/api/v2/dags/{dag_id}", {"Authorization": f"Bearer {token}"})[0] == 200
                   for dag_id in (project, dispatcher))

    def import_errors() -> str:
        return json.dumps(http_json("GET", f"{stack.api}/api/v2/importErrors", token=stack.token()), indent=1)

    wait_until(parsed, WAIT, f"DAGs {project} and {dispatcher} parsed",
               lambda: import_errors() + "\n" + stack.diagnostics())
    for dag_id in (project, dispatcher):
        dag = http_json("GET", f"{stack.api}/api/v2/dags/{dag_id}/details", token=stack.token())
        assert dag["is_paused"] is False, dag  # nothing here unpauses them: esteira creates them unpaused
        assert "esteira:config-error" not in {t["name"] for t in dag["tags"]}, dag
    assert http_json("GET", f"{stack.api}/api/v2/dags/{project}/details", token=stack.token())[
        "next_dagrun_run_after"] is None  # no schedule: only the event may start a run
    parse_seconds = time.monotonic() - started

    # the event, as the rule delivers it to the queue
    assert plan.trigger is not None
    event = s3_event(plan, stack.dev)
    sqs = stack.sqs()
    sent = time.monotonic()
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(event))

    def dispatched(count: int) -> bool:
        stack.processes.check_alive()
        runs = stack.runs(dispatcher)
        return len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs)

    def report() -> str:
        lines = []
        for dag_id in (dispatcher, project):
            for r in stack.runs(dag_id):
                lines.append(f"{dag_id} {r['dag_run_id']} {r['state']} run_after={r['run_after']} conf={r['conf']}")
                lines += [f"  {ti['task_id']}[{ti['map_index']}] {ti['state']}"
                          for ti in stack.task_instances(dag_id, r["dag_run_id"])]
        return "\n".join(lines) + "\n" + stack.diagnostics()

    wait_until(lambda: dispatched(1), WAIT, f"a run of {dispatcher} after the message", report)
    first_seconds = time.monotonic() - sent
    [first] = stack.runs(dispatcher)
    assert first["state"] == "success", report()
    assert first["run_type"] == "asset_triggered", first
    states = {(ti["task_id"], ti["map_index"]): ti["state"]
              for ti in stack.task_instances(dispatcher, first["dag_run_id"])}
    assert states == {("read_events", -1): "success", ("start_runs", 0): "success"}, report()

    [run] = stack.runs(project)
    assert run["dag_run_id"] == event["id"], run
    assert run["run_after"].replace("+00:00", "Z") == event["time"], run  # RUN_DATE (no logical date)
    assert run["logical_date"] is None, run
    assert run["conf"] == {"trigger_bucket": plan.trigger.bucket, "trigger_key": KEY}, run
    assert run["run_type"] == "operator_triggered", run  # Airflow 3.3's type for a TriggerDagRunOperator's run

    # the same message again (SQS delivers at least once): the dispatcher runs and starts nothing
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(event))
    wait_until(lambda: dispatched(2), WAIT, f"a second run of {dispatcher} after the duplicate", report)
    second = stack.runs(dispatcher)[-1]
    assert second["state"] == "success", report()
    states = {(ti["task_id"], ti["map_index"]): ti["state"]
              for ti in stack.task_instances(dispatcher, second["dag_run_id"])}
    assert states == {("read_events", -1): "success", ("start_runs", 0): "skipped"}, report()
    assert [r["dag_run_id"] for r in stack.runs(project)] == [event["id"]], report()
    # what the run's step is told (the ECS task's environment, rendered when the task starts; the
    # task itself cannot run against moto): RUN_DATE is the event's time, as on Step Functions
    step = plan.steps[0].step_id
    rendered: dict[str, str] = {}

    def step_rendered() -> bool:
        stack.processes.check_alive()
        url = f"{stack.api}/api/v2/dags/{project}/dagRuns/{urllib.parse.quote(event['id'])}/taskInstances/{step}"
        rendered.update(container_environment(http_json("GET", url, token=stack.token()).get("rendered_fields") or {}))
        return bool(rendered)

    wait_until(step_rendered, WAIT, f"the rendered environment of {project}.{step}", report)
    assert {k: rendered.get(k) for k in ("RUN_DATE", "RUN_ID", "TRIGGER_BUCKET", "TRIGGER_KEY")} == {
        "RUN_DATE": event["time"], "RUN_ID": event["id"], "TRIGGER_BUCKET": plan.trigger.bucket,
        "TRIGGER_KEY": KEY}, rendered
    # two objects landing in the same second: a run each, although Airflow may fold their asset
    # events into one dispatcher run (why the dispatcher exists), and their runs share run_after
    when = now()
    others = [s3_event(plan, stack.dev, f"incoming/2026-11-25/part-{n}.parquet", str(uuid.uuid4()), when)
              for n in (1, 2)]
    sqs.send_message_batch(QueueUrl=stack.queue_url, Entries=[
        {"Id": str(n), "MessageBody": json.dumps(other)} for n, other in enumerate(others)])

    def all_started() -> bool:
        return len(stack.runs(project)) >= 3 and dispatched(3)

    wait_until(all_started, WAIT, f"the runs of {project} for two more objects", report)
    runs = {r["dag_run_id"]: r for r in stack.runs(project)}
    assert set(runs) == {event["id"], *(other["id"] for other in others)}, report()
    for other in others:
        run = runs[other["id"]]
        assert run["run_after"].replace("+00:00", "Z") == when, run
        assert run["conf"] == {"trigger_bucket": plan.trigger.bucket, "trigger_key": other["detail"]["object"]["key"]}
    dispatches = stack.runs(dispatcher)
    assert {r["state"] for r in dispatches} == {"success"}, report()
    started_by = [sorted(ti["map_index"] for ti in stack.task_instances(dispatcher, r["dag_run_id"])
                         if ti["task_id"] == "start_runs") for r in dispatches[2:]]

    attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
    print(f"\nDAGs parsed in {parse_seconds:.1f}s; message -> dispatcher run done in {first_seconds:.1f}s; "
          f"the two objects' runs started by dispatcher runs mapping {started_by}; "
          f"whole test {time.monotonic() - started:.1f}s")
