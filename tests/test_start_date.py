"""schedule.start_date means the same instant on both orchestrators: Airflow's DAG start and
EventBridge Scheduler's StartDate (midnight of that day in schedule.timezone)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_bad_input import BASE, sub

from esteira.airflow.factory import build_all
from esteira.deploy import without_past_start_dates
from esteira.settings import Settings

START = sub("  retries: 2\n", "  retries: 2\n  timezone: America/Sao_Paulo\n  start_date: 2027-03-01\n")


def test_start_date_is_the_same_instant_in_airflow_and_in_the_schedule(
    write_project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    file = write_project("demo", START(BASE))
    projects = file.parent.parent
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "asl_export", "demo", "--env", "prd", "--projects-dir", str(projects),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [schedule] = json.loads((out / "prd" / "demo" / "schedules.json").read_text())
    assert schedule["StartDate"] == "2027-03-01T03:00:00Z"  # São Paulo is UTC-3
    stack = json.loads((out / "prd" / "demo" / "stack.cfn.json").read_text())
    assert stack["Resources"]["Schedule"]["Properties"]["StartDate"] == "2027-03-01T03:00:00Z"

    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects))
    dag = build_all(Settings.from_environ())["demo"]
    assert dag.start_date == datetime(2027, 3, 1, 3, 0, tzinfo=UTC)


def test_a_deploy_drops_a_start_date_already_past() -> None:
    said: list[str] = []
    template = {"Resources": {
        "Schedule": {"Type": "AWS::Scheduler::Schedule", "Properties": {"Name": "s", "StartDate": "2027-03-01T03:00:00Z"}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}},
    }}
    before = datetime(2027, 2, 1, tzinfo=UTC).timestamp()
    after = datetime(2027, 3, 2, tzinfo=UTC).timestamp()
    assert without_past_start_dates(template, before, said.append) == template
    dropped = without_past_start_dates(template, after, said.append)
    assert "StartDate" not in dropped["Resources"]["Schedule"]["Properties"]
    assert dropped["Resources"]["Topic"] == template["Resources"]["Topic"]
    assert said == ["Schedule: start_date 2027-03-01T03:00:00Z is past; the schedule fires from now on"]
