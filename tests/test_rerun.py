"""`esteira rerun`: a failed instant is redriven when Step Functions can, else started anew as
rerun-<instant>-<n>; one under way is never doubled; --failed picks the instants whose latest
attempt failed, oldest first.

moto (5.2) lists, describes and starts executions but implements no RedriveExecution and returns
no redriveStatus: the start path runs against moto's state machine made from esteira's export, and
the redrive path against botocore's Stubber, which holds each request to the service model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import moto.stepfunctions.models as moto_sfn
import pytest
import yaml
from botocore.stub import Stubber
from moto import mock_aws

from conftest import PROJECTS
from esteira import stepfunctions_client
from esteira.__main__ import main
from esteira.rerun import run_date_text
from esteira.stepfunctions_client import plan_rerun, redrive_token, run_rerun

ACCOUNT, REGION = "111111111111", "us-east-1"
SM_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:recsys-workflow"
_now = datetime.now(UTC)
LAST = _now.replace(hour=3, minute=0, second=0, microsecond=0)  # recsys: "0 3 * * *", UTC
LAST = LAST if _now > LAST else LAST - timedelta(days=1)


def day(ago: int) -> datetime:
    """The instant `ago` days before the last one that has passed."""
    return LAST - timedelta(days=ago)


def stamp(instant: datetime) -> str:
    return instant.strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Moto:
    projects: Path
    outcome: list[str] = field(default_factory=lambda: ["SUCCEEDED"])  # how new executions end

    @property
    def sfn(self) -> Any:
        return boto3.client("stepfunctions", region_name=REGION)

    def seed(self, name: str, status: str, started: datetime, execution_input: dict[str, str] | None = None) -> None:
        """An execution as an earlier run left it: started at `started`, now `status`."""
        self.sfn.start_execution(stateMachineArn=SM_ARN, name=name, input=json.dumps(execution_input or {}))
        execution = self.execution(name)
        execution.status = status
        execution.start_date = started.astimezone(UTC).replace(tzinfo=None)  # moto keeps naive UTC
        execution.stop_date = None if status == "RUNNING" else execution.start_date + timedelta(minutes=20)

    def seed_run(self, name: str, status: str, instant: datetime, *, after: timedelta = timedelta(hours=1)) -> None:
        self.seed(name, status, instant + after, {"run_date": run_date_text(instant), "run_id": name})

    def execution(self, name: str) -> Any:
        machine = moto_sfn.stepfunctions_backends[ACCOUNT][REGION].describe_state_machine(SM_ARN)
        return next(e for e in machine.executions if e.name == name)

    def names(self) -> set[str]:
        return {e["name"] for e in self.sfn.list_executions(stateMachineArn=SM_ARN)["executions"]}

    def input_of(self, name: str) -> dict[str, str]:
        return dict(json.loads(self.execution(name).execution_input))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Moto]:
    """moto as dev's account, the recsys state machine deployed from its export (as tests/test_backfill.py);
    a new execution ends at once with the fixture's `outcome`."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS, projects)
    state = Moto(projects)
    with mock_aws():
        creds = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/ci",
                                                RoleSessionName="ci")["Credentials"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
        boto3.setup_default_session()
        original = moto_sfn.Execution.__init__

        def ended(self: moto_sfn.Execution, *args: object, **kwargs: object) -> None:
            original(self, *args, **kwargs)
            self.status = state.outcome[0]

        monkeypatch.setattr(moto_sfn.Execution, "__init__", ended)
        out = tmp_path / "out"
        subprocess.run([sys.executable, "-m", "esteira", "export", "recsys", "--projects-dir", str(projects),
                        "--out", str(out)], check=True, capture_output=True)
        boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name="recsys-workflow", definition=(out / "dev" / "recsys" / "state_machine.asl.json").read_text(),
            roleArn=yaml.safe_load((projects / "environments.yaml").read_text())["dev"]["roles"]["step_functions"])
        yield state
    boto3.DEFAULT_SESSION = None


def rerun(aws: Moto, *args: str) -> list[str]:
    return ["rerun", "recsys", *args, "--env", "dev", "--projects-dir", str(aws.projects)]


def test_a_failed_date_moto_cannot_redrive_starts_anew_with_a_new_run_id(
    aws: Moto, capsys: pytest.CaptureFixture[str],
) -> None:
    instant = day(3)
    aws.seed_run(f"backfill-{stamp(instant)}", "FAILED", instant)
    assert main(rerun(aws, "--run-date", run_date_text(instant))) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    name = f"rerun-{stamp(instant)}-1"
    assert aws.names() == {f"backfill-{stamp(instant)}", name}
    assert aws.input_of(name) == {"run_date": run_date_text(instant), "run_id": f"rerun__{instant.isoformat()}__1"}
    assert f"{name}  started (backfill-{stamp(instant)} FAILED, not redrivable: Step Functions gave no redrive status)" \
        in out
    assert f"{name}  SUCCEEDED" in out and out.splitlines()[-1] == "0 redriven, 1 started, 0 already under way"


def test_a_succeeded_date_starts_a_new_uniquely_named_execution_each_time(
    aws: Moto, capsys: pytest.CaptureFixture[str],
) -> None:
    instant = day(2)
    aws.seed_run(f"backfill-{stamp(instant)}", "SUCCEEDED", instant)
    argv = rerun(aws, "--run-date", instant.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    assert main(argv) == 0 and main(argv) == 0, capsys.readouterr().err
    reruns = [f"rerun-{stamp(instant)}-{n}" for n in (1, 2)]
    assert aws.names() == {f"backfill-{stamp(instant)}", *reruns}
    assert [aws.input_of(name)["run_id"] for name in reruns] == [f"rerun__{instant.isoformat()}__{n}" for n in (1, 2)]
    assert aws.input_of(f"backfill-{stamp(instant)}")["run_id"] == f"backfill-{stamp(instant)}"  # left alone
    assert f"{reruns[1]}  started ({reruns[0]} SUCCEEDED)" in capsys.readouterr().out


def test_repeating_the_command_while_the_first_runs_starts_nothing(
    aws: Moto, capsys: pytest.CaptureFixture[str],
) -> None:
    instant = day(4)
    aws.seed_run(f"backfill-{stamp(instant)}", "FAILED", instant)
    aws.seed_run(f"rerun-{stamp(instant)}-1", "RUNNING", instant, after=timedelta(days=1))
    before = aws.names()
    assert main([*rerun(aws, "--run-date", run_date_text(instant)), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        f"{run_date_text(instant)}  skip  rerun-{stamp(instant)}-1  RUNNING: not started again"
    assert main([*rerun(aws, "--run-date", run_date_text(instant)), "--no-wait"]) == 0
    out = capsys.readouterr().out
    assert f"rerun-{stamp(instant)}-1  RUNNING: not started again" in out and "0 started" in out
    assert aws.names() == before


def test_two_invocations_racing_on_one_instant_start_one_execution(aws: Moto) -> None:
    """Both plan rerun-<instant>-1 with the same input; Step Functions runs a running one once."""
    instant = day(5)
    aws.seed_run(f"backfill-{stamp(instant)}", "TIMED_OUT", instant)
    aws.outcome[0] = "RUNNING"
    session = boto3.Session(region_name=REGION)
    first, second = (plan_rerun(session, SM_ARN, instants=[instant]) for _ in range(2))
    for actions in (first, second):
        run_rerun(session, SM_ARN, actions, wait=False, say=lambda _: None)
    assert aws.names() == {f"backfill-{stamp(instant)}", f"rerun-{stamp(instant)}-1"}


def test_failed_picks_exactly_the_instants_whose_latest_attempt_failed_oldest_first(
    aws: Moto, capsys: pytest.CaptureFixture[str],
) -> None:
    aws.seed_run(f"backfill-{stamp(day(20))}", "FAILED", day(20))  # before the 14 days
    aws.seed_run(f"backfill-{stamp(day(9))}", "FAILED", day(9))
    aws.seed("7f9c4d2e-0b1a-4c55-9e0f-3a2b1c0d9e8f", "TIMED_OUT", day(7) + timedelta(seconds=2),  # the schedule's
             {"run_date": run_date_text(day(7)), "run_id": "0a1b2c3d-scheduler-execution-id"})
    aws.seed_run(f"backfill-{stamp(day(6))}", "FAILED", day(6))
    aws.seed_run(f"rerun-{stamp(day(6))}-1", "SUCCEEDED", day(6), after=timedelta(days=2))  # fixed since
    aws.seed_run(f"backfill-{stamp(day(5))}", "SUCCEEDED", day(5))
    aws.seed_run(f"backfill-{stamp(day(3))}", "ABORTED", day(3))
    aws.seed_run(f"rerun-{stamp(day(3))}-1", "FAILED", day(3), after=timedelta(hours=5))
    aws.seed_run(f"backfill-{stamp(day(2))}", "FAILED", day(2))
    aws.seed_run(f"rerun-{stamp(day(2))}-1", "RUNNING", day(2), after=timedelta(hours=5))  # under way
    by_hand = day(1) + timedelta(hours=5, seconds=7, microseconds=500_000)  # no run_date: RUN_DATE = its start
    aws.seed("by-hand", "FAILED", by_hand)

    assert main([*rerun(aws, "--failed"), "--dry-run"]) == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.splitlines()
    expected = [(day(9), 1), (day(7), 1), (day(3), 2), (by_hand.replace(microsecond=0), 1)]
    assert [line.split(None, 3) for line in lines[:-1]] == [
        [run_date_text(instant), "start", f"rerun-{stamp(instant)}-{n}",
         json.dumps({"run_date": run_date_text(instant), "run_id": f"rerun__{instant.isoformat()}__{n}"})]
        for instant, n in expected]
    assert lines[-1] == "0 redrive(s), 4 start(s), 0 already running, of recsys-workflow in dev (dry run: nothing changed)"

    assert main([*rerun(aws, "--failed", "--from", day(10).date().isoformat(), "--to", run_date_text(day(4))),
                 "--dry-run"]) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()[:-1]] == \
        [f"rerun-{stamp(day(9))}-1", f"rerun-{stamp(day(7))}-1"]

    assert main(rerun(aws, "--failed")) == 0
    started = [line.split()[1] for line in capsys.readouterr().out.splitlines() if "  started (" in line]
    assert started == [f"rerun-{stamp(instant)}-{n}" for instant, n in expected]
    assert main(rerun(aws, "--failed")) == 0  # again: every latest attempt succeeded
    assert "nothing to re-run" in capsys.readouterr().out
    assert f"rerun-{stamp(day(20))}-1" not in aws.names()


def test_a_rerun_that_fails_again_is_exit_1_and_named(aws: Moto, capsys: pytest.CaptureFixture[str]) -> None:
    aws.seed_run(f"backfill-{stamp(day(1))}", "FAILED", day(1))
    aws.outcome[0] = "FAILED"
    assert main(rerun(aws, "--run-date", run_date_text(day(1)))) == 1
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"0 redriven, 1 started, 0 already under way, 1 failed: rerun-{stamp(day(1))}-1"


def test_an_aws_error_is_one_line_exit_1(aws: Moto, capsys: pytest.CaptureFixture[str]) -> None:
    aws.sfn.delete_state_machine(stateMachineArn=SM_ARN)
    assert main(rerun(aws, "--failed")) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "rerun:" in err and "StateMachineDoesNotExist" in err, err


@pytest.mark.parametrize(("argv", "words"), [
    (["--run-date", "2026-11-20"], "2026-11-20T00:00:00Z is not an instant of '0 3 * * *' (UTC); "
                                   "nearest instants: 2026-11-19T03:00:00Z and 2026-11-20T03:00:00Z"),
    (["--run-date", "2026-11-20T03:00:00Z", "--run-date", "2026-11-20T03:30:00Z"],
     "nearest instants: 2026-11-20T03:00:00Z and 2026-11-21T03:00:00Z"),
    (["--run-date", run_date_text(LAST + timedelta(days=1))], "has not come yet"),
    (["--run-date", "yesterday"], "write YYYY-MM-DD"),
    (["--run-date", "2026-11-20T03:00:00Z", "--from", "2026-11-01"], "--from/--to go with --failed"),
    (["--failed", "--from", "2026-11-20", "--to", "2026-11-01"], "--from is after --to"),
    (["--failed", "--run-date", "2026-11-20T03:00:00Z"], "not allowed with argument"),
])
def test_bad_dates_are_exit_2_naming_the_nearest_instants(argv: list[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "esteira", "rerun", "recsys", *argv, "--dry-run"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""  # refused before any AWS call


def test_the_nearest_instants_are_said_in_the_projects_zone_too(projects_dir: Path) -> None:
    config = projects_dir / "recsys" / "config.yaml"
    config.write_text(config.read_text().replace("retries: 2", "retries: 2\n  timezone: America/New_York", 1))
    done = subprocess.run([sys.executable, "-m", "esteira", "rerun", "recsys", "--run-date", "2026-11-20T03:00:00Z",
                           "--projects-dir", str(projects_dir)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert ("nearest instants: 2026-11-19T08:00:00Z (2026-11-19T03:00:00-05:00 America/New_York) and "
            "2026-11-20T08:00:00Z (2026-11-20T03:00:00-05:00 America/New_York)") in done.stderr


# --- the redrive path, which moto does not implement: botocore's Stubber checks each request ---------

BACKFILL = f"backfill-{stamp(day(3))}"


def execution_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:recsys-workflow:{name}"


BACKFILL_ARN = execution_arn(BACKFILL)
BACKFILL_INPUT = json.dumps({"run_date": run_date_text(day(3)), "run_id": f"backfill__{day(3).isoformat()}"},
                            separators=(",", ":"))


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """`esteira rerun` on a stubbed Step Functions client in dev's account; no pause between looks."""
    session = boto3.Session(region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    sfn, sts = session.client("stepfunctions"), session.client("sts")
    with Stubber(sts) as identity:
        identity.add_response("get_caller_identity", {"Account": ACCOUNT, "UserId": "AROAEXAMPLE:ci",
                                                        "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/ci"})
        monkeypatch.setattr(boto3, "Session", lambda **_: _Session({"stepfunctions": sfn, "sts": sts}))
        monkeypatch.setattr(stepfunctions_client.time, "sleep", lambda _: None)
        with Stubber(sfn) as stub:
            stub.add_response("list_executions", {"executions": [{
                "executionArn": BACKFILL_ARN, "stateMachineArn": SM_ARN, "name": BACKFILL, "status": "FAILED",
                "startDate": day(3) + timedelta(hours=1), "stopDate": day(3) + timedelta(hours=2)}]},
                {"stateMachineArn": SM_ARN})
            yield stub
            stub.assert_no_pending_responses()


@dataclass
class _Session:
    clients: dict[str, Any]

    def client(self, name: str) -> Any:
        return self.clients[name]


def described(status: str, *, redrive_status: str | None = None, reason: str | None = None,
              redrive_count: int = 0, name: str = BACKFILL) -> dict[str, Any]:
    response: dict[str, Any] = {
        "executionArn": execution_arn(name), "name": name,
        "stateMachineArn": SM_ARN, "status": status, "startDate": day(3) + timedelta(hours=1),
        "input": BACKFILL_INPUT, "redriveCount": redrive_count}
    if redrive_status:
        response["redriveStatus"] = redrive_status
    if reason:
        response["redriveStatusReason"] = reason
    return response


def describe(stub: Stubber, response: dict[str, Any]) -> None:
    stub.add_response("describe_execution", response, {"executionArn": response["executionArn"]})


def test_a_redrivable_failure_is_redriven_and_followed_to_its_end(
    stubbed: Stubber, capsys: pytest.CaptureFixture[str],
) -> None:
    describe(stubbed, described("FAILED", redrive_status="REDRIVABLE"))
    stubbed.add_response("redrive_execution", {"redriveDate": datetime.now(UTC)},
                         {"executionArn": BACKFILL_ARN, "clientToken": redrive_token(BACKFILL_ARN, 0)})
    describe(stubbed, described("FAILED", redrive_status="REDRIVABLE"))  # not visible yet: still waited for
    describe(stubbed, described("RUNNING", redrive_count=1))
    describe(stubbed, described("SUCCEEDED", redrive_count=1))
    assert main(["rerun", "recsys", "--run-date", run_date_text(day(3)), "--projects-dir", str(PROJECTS)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{run_date_text(day(3))}  {BACKFILL}  redriven ({BACKFILL} FAILED)",
                   f"{'':20}  {BACKFILL}  SUCCEEDED", "1 redriven, 0 started, 0 already under way"]


def test_the_dry_run_says_redrive_with_the_input_the_execution_keeps(
    stubbed: Stubber, capsys: pytest.CaptureFixture[str],
) -> None:
    describe(stubbed, described("TIMED_OUT", redrive_status="REDRIVABLE"))
    assert main(["rerun", "recsys", "--run-date", run_date_text(day(3)), "--projects-dir", str(PROJECTS),
                 "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{run_date_text(day(3))}  redrive  {BACKFILL}  {json.dumps(json.loads(BACKFILL_INPUT))}",
        "1 redrive(s), 0 start(s), 0 already running, of recsys-workflow in dev (dry run: nothing changed)"]


def start_and_succeed(stub: Stubber) -> str:
    name = f"rerun-{stamp(day(3))}-1"
    stub.add_response("start_execution", {"executionArn": execution_arn(name), "startDate": datetime.now(UTC)}, {
        "stateMachineArn": SM_ARN, "name": name,
        "input": json.dumps({"run_date": run_date_text(day(3)), "run_id": f"rerun__{day(3).isoformat()}__1"},
                            separators=(",", ":"))})
    describe(stub, described("SUCCEEDED", name=name))
    return name


def test_past_the_redrive_window_a_new_execution_starts(stubbed: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    describe(stubbed, described("FAILED", redrive_status="NOT_REDRIVABLE",
                                reason="Execution redrivable period exceeded"))
    name = start_and_succeed(stubbed)
    assert main(["rerun", "recsys", "--run-date", run_date_text(day(3)), "--projects-dir", str(PROJECTS)]) == 0
    assert (f"{name}  started ({BACKFILL} FAILED, not redrivable: Execution redrivable period exceeded)"
            in capsys.readouterr().out)


def test_a_redrive_refused_at_the_last_moment_starts_a_new_execution(
    stubbed: Stubber, capsys: pytest.CaptureFixture[str],
) -> None:
    describe(stubbed, described("FAILED", redrive_status="REDRIVABLE"))
    stubbed.add_client_error("redrive_execution", "ExecutionNotRedrivable", "Execution redrivable period exceeded",
                             expected_params={"executionArn": BACKFILL_ARN,
                                              "clientToken": redrive_token(BACKFILL_ARN, 0)})
    describe(stubbed, described("FAILED", redrive_status="NOT_REDRIVABLE"))
    name = start_and_succeed(stubbed)
    assert main(["rerun", "recsys", "--run-date", run_date_text(day(3)), "--projects-dir", str(PROJECTS)]) == 0
    out = capsys.readouterr().out
    assert f"{BACKFILL}  not redrivable after all (Execution redrivable period exceeded)" in out
    assert f"{name}  started ({BACKFILL} not redrivable)" in out and f"{name}  SUCCEEDED" in out


def test_a_redrive_another_invocation_made_first_is_followed_not_doubled(
    stubbed: Stubber, capsys: pytest.CaptureFixture[str],
) -> None:
    describe(stubbed, described("FAILED", redrive_status="REDRIVABLE"))
    stubbed.add_client_error("redrive_execution", "ExecutionNotRedrivable", "Execution is RUNNING and cannot be redriven",
                             expected_params={"executionArn": BACKFILL_ARN,
                                              "clientToken": redrive_token(BACKFILL_ARN, 0)})
    describe(stubbed, described("RUNNING", redrive_count=1))
    describe(stubbed, described("SUCCEEDED", redrive_count=1))
    assert main(["rerun", "recsys", "--run-date", run_date_text(day(3)), "--projects-dir", str(PROJECTS)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{run_date_text(day(3))}  {BACKFILL}  RUNNING: not redriven again", f"{'':20}  {BACKFILL}  SUCCEEDED",
        "0 redriven, 0 started, 1 already under way"]


def test_a_start_another_invocation_made_first_is_reported_not_doubled(
    stubbed: Stubber, capsys: pytest.CaptureFixture[str],
) -> None:
    """ListExecutions is eventually consistent: a rerun started a moment ago may not be listed yet."""
    describe(stubbed, described("FAILED", redrive_status="NOT_REDRIVABLE", reason="Execution redrivable period exceeded"))
    name = f"rerun-{stamp(day(3))}-1"
    stubbed.add_client_error("start_execution", "ExecutionAlreadyExists", f"Execution Already Exists: '{name}'")
    describe(stubbed, described("SUCCEEDED", name=name))
    describe(stubbed, described("SUCCEEDED", name=name))
    assert main(["rerun", "recsys", "--run-date", run_date_text(day(3)), "--projects-dir", str(PROJECTS)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{run_date_text(day(3))}  {name}  exists (SUCCEEDED): not started again"
    assert out[-1] == "0 redriven, 0 started, 1 already under way"


def test_the_environments_file_given_is_the_one_used(
    aws: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    other = tmp_path / "other-environments.yaml"
    other.write_text((aws.projects / "environments.yaml").read_text().replace(ACCOUNT, "333333333333"))
    assert main([*rerun(aws, "--failed"), "--environments-file", str(other)]) == 1
    err = capsys.readouterr().err
    assert "credentials are for account 111111111111" in err and "account 333333333333" in err
