"""`esteira backfill`: on AWS, exactly the runs Airflow's backfill of the same range creates — the
same instants (daylight saving included), RUN_DATE and RUN_ID — started once, oldest first."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import moto.stepfunctions.models as moto_sfn
import pendulum
import pytest
import yaml
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import TimeRestriction
from moto import mock_aws

from conftest import PROJECTS
from esteira.__main__ import main
from esteira.airflow.factory import build_all
from esteira.airflow.timetable import EsteiraTimetable
from esteira.backfill import plan_backfill
from esteira.settings import Settings

LATER = datetime(2030, 1, 1, tzinfo=UTC)  # "now" for planning: every instant below has passed
ZONES = ["UTC", "America/New_York", "Europe/Lisbon", "America/Sao_Paulo", "Australia/Lord_Howe"]
CRONS = ["0 3 * * *", "30 2 * * *", "30 1 * * *", "0 * * * *", "*/20 * * * *", "15 */2 * * *", "0 1-3 * * *",
         "0 0 * * 0", "45 1,2 8 3 *"]
# spring-forward and fall-back weeks of 2025-2026 in both hemispheres
RANGES = [(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 10, tzinfo=UTC)),
          (datetime(2025, 10, 20, tzinfo=UTC), datetime(2025, 11, 10, tzinfo=UTC)),
          (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC))]


def airflow_backfill(timetable: EsteiraTimetable, start: datetime, end: datetime) -> list[datetime]:
    """The logical dates Airflow's backfill planning walks (models/backfill.py: the DAG's timetable
    with catchup from --from-date to --to-date)."""
    restriction = TimeRestriction(pendulum.instance(start), pendulum.instance(end), catchup=True)
    out, info = [], None
    while (info := timetable.next_dagrun_info(last_automated_data_interval=info.data_interval if info else None,
                                              restriction=restriction)) is not None:
        out.append(info.logical_date.astimezone(UTC))
    return out


@pytest.mark.parametrize("zone", ZONES)
def test_the_plan_is_airflows_own_in_every_zone(zone: str) -> None:
    """The timetable of a Step-Functions-owned DAG, which schedules nothing but plans backfills."""
    for cron in CRONS:
        for start, end in RANGES:
            ours = [run.instant for run in plan_backfill(cron, zone, start, end, now=LATER)]
            assert ours == airflow_backfill(EsteiraTimetable(cron, zone, scheduled=False), start, end), (cron, start)


def test_the_dry_run_lists_what_airflows_backfill_of_the_dag_creates(
    projects_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    config = projects_dir / "recsys" / "config.yaml"
    config.write_text(config.read_text().replace('retries: 2', 'retries: 2\n  timezone: America/New_York', 1)
                      .replace('cron: "0 3 * * *"', 'cron: "30 1 * * *"'))
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects_dir))
    dag = DagSerialization.from_dict(DagSerialization.to_dict(build_all(Settings.from_environ())["recsys"]))
    start, end = datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)  # New York's fall-back
    expected = [info.logical_date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                for info in dag.iter_dagrun_infos_between(start, end)]
    assert main(["backfill", "recsys", "--from", "2026-10-30", "--to", "2026-11-03", "--env", "prd",
                 "--projects-dir", str(projects_dir), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # 01:30 exists twice on 1 November: EventBridge fires once, at the first (EDT, 05:30Z)
    assert [line.split()[0] for line in lines[:-1]] == expected == [
        "2026-10-30T05:30:00Z", "2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    assert lines[0].split(None, 2)[1:] == ["backfill-20261030T053000Z", json.dumps(
        {"run_date": "2026-10-30T05:30:00Z", "run_id": "backfill__2026-10-30T05:30:00+00:00"})]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """moto as dev's account, the recsys state machine deployed from its export; executions end at once."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS, projects)
    with mock_aws():
        creds = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::111111111111:role/ci",
                                                RoleSessionName="ci")["Credentials"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
        boto3.setup_default_session()
        # moto's executions stay RUNNING (its interpreter is off): end them as a finished run would
        original = moto_sfn.Execution.__init__

        def finished(self: moto_sfn.Execution, *args: object, **kwargs: object) -> None:
            original(self, *args, **kwargs)
            self.status = "SUCCEEDED"

        monkeypatch.setattr(moto_sfn.Execution, "__init__", finished)
        out = tmp_path / "out"
        subprocess.run([sys.executable, "-m", "esteira", "export", "recsys", "--projects-dir", str(projects),
                        "--out", str(out)], check=True, capture_output=True)
        boto3.client("stepfunctions", region_name="us-east-1").create_state_machine(
            name="recsys-workflow", definition=(out / "dev" / "recsys" / "state_machine.asl.json").read_text(),
            roleArn=yaml.safe_load((projects / "environments.yaml").read_text())["dev"]["roles"]["step_functions"])
        yield projects
    boto3.DEFAULT_SESSION = None


def test_a_backfill_starts_each_instant_once_in_order(aws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["backfill", "recsys", "--from", "2026-11-20", "--to", "2026-11-23T03:00:00Z", "--env", "dev",
            "--projects-dir", str(aws)]
    assert main(argv) == 0, capsys.readouterr().err
    first = capsys.readouterr().out
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = "arn:aws:states:us-east-1:111111111111:stateMachine:recsys-workflow"
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    names = sorted(e["name"] for e in executions)
    assert names == [f"backfill-202611{day}T030000Z" for day in (20, 21, 22, 23)]  # --to is inclusive
    started = [line.split()[1] for line in first.splitlines() if line.endswith("started")]
    assert started == names  # oldest first
    sent = json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"])
    day = executions[0]["name"][9:17]
    assert sent["run_date"] == f"{day[:4]}-{day[4:6]}-{day[6:]}T03:00:00Z"
    assert sent["run_id"] == f"backfill__{day[:4]}-{day[4:6]}-{day[6:]}T03:00:00+00:00"

    assert main(argv) == 0  # again: nothing starts twice
    again = capsys.readouterr().out
    assert "0 started, 4 already existed" in again
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 4


@pytest.mark.parametrize(("bounds", "words"), [
    (["--from", "2026-11-23", "--to", "2026-11-20"], "--from is after --to"),
    (["--from", "yesterday", "--to", "2026-11-20"], "write YYYY-MM-DD"),
])
def test_bad_bounds_are_exit_2_without_traceback(bounds: list[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "esteira", "backfill", "recsys", *bounds, "--dry-run"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


AIRFLOW = Path(sys.executable).parent / "airflow"


@pytest.mark.parametrize("cron", ["30 1,2 * * *", "*/30 1 * * *"])
def test_the_dry_run_lists_what_airflows_own_backfill_dry_run_lists_across_dst(
    projects_dir: Path, tmp_path: Path, cron: str,
) -> None:
    """`airflow backfill create --dry-run` (Airflow's CLI, its metadata DB, the DAG as the
    dag-processor stores it) and `esteira backfill --dry-run`, for New York's spring-forward (02:30
    does not exist) and fall-back (01:xx exists twice) weeks: the same instants."""
    config = projects_dir / "recsys" / "config.yaml"
    config.write_text(config.read_text().replace('retries: 2', 'retries: 2\n  timezone: America/New_York', 1)
                      .replace('cron: "0 3 * * *"', f'cron: "{cron}"'))
    home = tmp_path / "airflow"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "ESTEIRA_PROJECTS_DIR": str(projects_dir),
           "ESTEIRA_BACKEND": "ecs", "ESTEIRA_ENV": "prd"}  # a Step-Functions-owned DAG, as on MWAA
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    for argv in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run([str(AIRFLOW), *argv], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for start, end in (("2026-03-06", "2026-03-10"), ("2026-10-30", "2026-11-03")):
        done = subprocess.run([str(AIRFLOW), "backfill", "create", "--dag-id", "recsys", "--from-date", start,
                               "--to-date", end, "--dry-run"], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        airflows = [datetime.fromisoformat(row.split("|")[1].strip()).strftime("%Y-%m-%dT%H:%M:%SZ")
                    for row in done.stdout.splitlines() if re.match(r"^\| \d{4}-", row)]
        ours = subprocess.run([sys.executable, "-m", "esteira", "backfill", "recsys", "--from", start, "--to", end,
                               "--env", "prd", "--projects-dir", str(projects_dir), "--dry-run"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert ours.returncode == 0, ours.stderr
        assert [line.split()[0] for line in ours.stdout.splitlines()[:-1]] == airflows and airflows, (start, cron)
