"""The S3 trigger under Airflow 2.11, which has no AssetWatcher: no dispatcher DAG is built, even where
Airflow owns production on AWS; the project's DAG takes the object as params of a manual run (what
`esteira trigger` passes as conf), and every other run gets empty TRIGGER_BUCKET/TRIGGER_KEY, as on
Step Functions. The stack's SQS queue then has no reader: own such a trigger from Step Functions, or
run Airflow 3."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from esteira.airflow.factory import build_all
from esteira.settings import Settings

WRITE_ENV = ("import json, os, pathlib; d = pathlib.Path(os.environ['DATA_ROOT']); "
             "d.mkdir(parents=True, exist_ok=True); "
             "(d / 'env.json').write_text(json.dumps(dict(os.environ)))")
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
      - {{id: load, name: Load, command: ["python", "-c", "{WRITE_ENV}"], resources: {{cpu: 1, memory_gb: 1}}}}
infra: {{compute: {{provider: ec2, ec2_type: t3.small, min_quantity: 0, max_quantity: 1, spot: true}}}}
trigger:
  s3:
    bucket: "rentcars-landing-{{env}}"
    prefix: "incoming/"
    suffix: ".parquet"
"""


@pytest.mark.usefixtures("airflow_db")
def test_no_watcher_under_airflow_2_the_object_comes_as_params_of_a_manual_run(
    write_project: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_project("landing", CONFIG)
    projects = config.parent.parent
    on_aws = build_all(Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(projects), "ESTEIRA_BACKEND": "ecs",
                                              "ESTEIRA_ENV": "prd"}))
    assert set(on_aws) == {"landing"}  # no landing__s3_trigger: Airflow 2 has no AssetWatcher
    assert set(on_aws["landing"].params) == {"trigger_bucket", "trigger_key"}

    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("ESTEIRA_BACKEND", "local")
    dag = build_all(Settings.from_environ())["landing"]
    env_file = projects.parent / ".esteira" / "data" / "env.json"
    day = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    run = dag.test(execution_date=day, run_conf={"trigger_bucket": "rentcars-landing-local",
                                                 "trigger_key": "incoming/x.parquet"})
    assert run.state == "success"
    env = json.loads(env_file.read_text())
    assert (env["RUN_DATE"], env["TRIGGER_BUCKET"], env["TRIGGER_KEY"]) == (
        "2026-11-20T03:00:00Z", "rentcars-landing-local", "incoming/x.parquet")
    run = dag.test(execution_date=day + timedelta(days=1))  # a scheduled-like run: no object
    assert run.state == "success"
    env = json.loads(env_file.read_text())
    assert (env["TRIGGER_BUCKET"], env["TRIGGER_KEY"]) == ("", "")
