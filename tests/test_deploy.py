"""`python -m asl_export --deploy`: the project's stack, created, left alone, updated, in moto.

The generated templates also pass cfn-lint, and the stack holds the very state machine that
`state_machine.asl.json` holds. Waits are bounded: a change set or stack still running at the
timeout, or failed, ends the deploy with a message naming the stack, change set and where to look.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from asl_export.cli import main
from conftest import PROJECTS
from esteira.deploy import DeployError, DeployResult, Waits, deploy_stack, waiter_config

ACCOUNT = "111111111111"  # dev's account in projects/environments.yaml
REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto, with credentials of dev's account (moto maps an assumed role's keys to its account)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        creds = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/deployer",
                                                RoleSessionName="ci")["Credentials"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
        boto3.setup_default_session()  # the default session caches the first credentials it saw
        yield
    boto3.DEFAULT_SESSION = None


@pytest.fixture
def projects(tmp_path: Path, aws: None) -> Path:
    """The repo's projects, with environments.yaml pointing at a VPC that exists in moto."""
    dest = tmp_path / "projects"
    shutil.copytree(PROJECTS, dest)
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    group = ec2.create_security_group(GroupName="jobs", Description="jobs", VpcId=vpc)["GroupId"]
    env_file = dest / "environments.yaml"
    envs = yaml.safe_load(env_file.read_text())
    envs["dev"]["network"].update(subnets=subnets, security_groups=[group])
    env_file.write_text(yaml.safe_dump(envs))
    return dest


def deploy(projects: Path, out: Path, capsys: pytest.CaptureFixture[str], *names: str) -> tuple[int, str, str]:
    rc = main([*names, "--projects-dir", str(projects), "--out", str(out), "--env", "dev", "--deploy"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_deploy_creates_the_stack_then_does_nothing_then_updates_what_changed(
    projects: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    rc, stdout, stderr = deploy(projects, out, capsys, "recsys")
    assert rc == 0, stderr
    assert "esteira-recsys: " in stdout and "change(s) to create" in stdout
    assert "Add    StateMachine AWS::StepFunctions::StateMachine" in stdout
    assert "esteira-recsys: created (CREATE_COMPLETE)" in stdout

    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:recsys-workflow"
    deployed = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
    assert deployed == json.loads((out / "dev" / "recsys" / "state_machine.asl.json").read_text())
    assert boto3.client("ecs", region_name=REGION).describe_clusters(
        clusters=["ml-cluster-recsys"])["clusters"][0]["status"] == "ACTIVE"
    topics = [t["TopicArn"] for t in boto3.client("sns", region_name=REGION).list_topics()["Topics"]]
    assert f"arn:aws:sns:{REGION}:{ACCOUNT}:recsys-notifications" in topics
    groups = boto3.client("logs", region_name=REGION).describe_log_groups(logGroupNamePrefix="/ecs/recsys")
    assert [g["retentionInDays"] for g in groups["logGroups"]] == [30]

    rc, stdout, stderr = deploy(projects, out, capsys, "recsys")
    assert (rc, stdout.splitlines()[-1]) == (0, "esteira-recsys: no changes"), stderr

    cfg = projects / "recsys" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("timeout_seconds: 3600", "timeout_seconds: 5400", 1))
    rc, stdout, stderr = deploy(projects, out, capsys, "recsys")
    assert rc == 0, stderr
    assert "Modify StateMachine AWS::StepFunctions::StateMachine" in stdout
    assert "esteira-recsys: updated (UPDATE_COMPLETE)" in stdout
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])["TimeoutSeconds"] == 5400


def test_deploy_refuses_credentials_of_another_account(
    projects: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::222222222222:role/deployer",
                                            RoleSessionName="ci")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    rc, _, stderr = deploy(projects, tmp_path / "out", capsys, "recsys")
    boto3.setup_default_session()
    assert rc == 1
    assert "credentials are for account 222222222222" in stderr and f"account {ACCOUNT}" in stderr
    assert "Traceback" not in stderr
    stacks = boto3.client("cloudformation", region_name=REGION).list_stacks()["StackSummaries"]
    assert not stacks


def test_a_deploy_aws_refuses_fails_with_its_reason_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], aws: None,
) -> None:
    # environments.yaml names subnets that do not exist in this account
    rc, _, stderr = deploy(PROJECTS, tmp_path / "out", capsys, "recsys")
    assert rc == 1
    assert "deploy failed: esteira-recsys:" in stderr and "subnet" in stderr.lower()
    assert "Traceback" not in stderr


def test_every_generated_stack_passes_cfn_lint(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS, projects)
    fargate = projects / "fargate-demo"
    fargate.mkdir()
    text = (PROJECTS / "churn" / "config.yaml").read_text().replace("project_name: churn", "project_name: fargate-demo")
    text = text.replace('    provider: "ec2"\n    ec2_type: "m5.xlarge"\n    min_quantity: 0\n    max_quantity: 3\n',
                        '    provider: "fargate"\n')
    text = text.replace("runtime:\n", "runtime:\n  secrets:\n    DB_PASSWORD: \"ssm:/fargate-demo/db\"\n"
                                      "    API_TOKEN: \"secretsmanager:fargate-demo/api\"\n", 1)
    (fargate / "config.yaml").write_text(text)
    out = tmp_path / "out"
    for env in ("dev", "prd"):
        result = subprocess.run([sys.executable, "-m", "asl_export", "--all", "--env", env, "--projects-dir",
                                 str(projects), "--out", str(out)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    templates = sorted(str(p) for p in out.glob("*/*/stack.cfn.json"))
    assert len(templates) == 6
    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), *templates], capture_output=True, text=True,
                          env={**os.environ})
    assert lint.returncode == 0, lint.stdout + lint.stderr

    stack = json.loads((out / "prd" / "fargate-demo" / "stack.cfn.json").read_text())
    resources = stack["Resources"]
    assert "AutoScalingGroup" not in resources and "LaunchTemplate" not in resources
    assert resources["ClusterCapacityProviders"]["Properties"]["CapacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    [container] = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["Image"] == "222222222222.dkr.ecr.us-east-1.amazonaws.com/ml-jobs:fargate-demo-0.3.0"
    # secrets reach the container from the stores, never as plain environment
    assert {s["Name"] for s in container["Secrets"]} == {"DB_PASSWORD", "API_TOKEN"}
    assert not {"DB_PASSWORD", "API_TOKEN"} & {e["Name"] for e in container["Environment"]}
    execution = resources["TaskExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {s["Sid"] for s in execution} >= {"ReadTheSecretsParameters", "ReadTheSecrets"}


def test_iam_is_least_privilege(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["recsys", "--out", str(out), "--env", "prd"]) == 0
    resources = json.loads((out / "prd" / "recsys" / "stack.cfn.json").read_text())["Resources"]

    def statements(role: str) -> list[dict]:
        return resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]

    # the only wildcard resource is ecr:GetAuthorizationToken, which has no resource-level form
    for role in ("TaskExecutionRole", "TaskRole", "StateMachineRole", "SchedulerRole"):
        for st in statements(role):
            if st["Resource"] == "*":
                assert st["Action"] == ["ecr:GetAuthorizationToken"], (role, st)
            assert not any(a.endswith(":*") or a == "*" for a in st["Action"]), (role, st)
    [start] = statements("SchedulerRole")
    assert start["Action"] == ["states:StartExecution"] and start["Resource"] == {"Ref": "StateMachine"}
    run = next(s for s in statements("StateMachineRole") if s["Action"] == ["ecs:RunTask"])
    assert "task-definition/recsys:*" in run["Resource"]["Fn::Sub"]
    assert run["Condition"]["ArnEquals"]["ecs:cluster"]["Fn::Sub"].endswith(":cluster/ml-cluster-recsys")
    data = next(s for s in statements("TaskRole") if "s3:PutObject" in s["Action"])
    assert data["Resource"]["Fn::Sub"] == "arn:${AWS::Partition}:s3:::rentcars-ml-prd/esteira/recsys/*"
    for role in ("TaskExecutionRole", "TaskRole", "StateMachineRole", "SchedulerRole"):
        trust = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    # an address only under on_failure never receives success messages
    subs = {r["Properties"]["Endpoint"]: r["Properties"]["FilterPolicy"]
            for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"}
    assert subs["oncall@rentcars.com"] == {"status": ["FAILED"]}
    assert subs["ml-team@rentcars.com"] == {"status": ["SUCCEEDED", "FAILED"]}


def _many_steps(projects: Path, count: int) -> None:
    """recsys with `count` steps in a chain: a stack over CloudFormation's inline limit."""
    cfg_file = projects / "recsys" / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    first = cfg["batch"]["pipeline"]["steps"][0]
    cfg["batch"]["pipeline"]["steps"] = [{**first, "id": f"step_{i:03d}", "name": f"Step {i}"} for i in range(count)]
    cfg_file.write_text(yaml.safe_dump(cfg))


def test_a_stack_over_the_inline_limit_is_deployed_through_s3(
    projects: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _many_steps(projects, 60)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="rentcars-ml-dev")
    rc, stdout, stderr = deploy(projects, tmp_path / "out", capsys, "recsys")
    assert rc == 0, stderr
    size = int(stdout.split("template of ")[1].split(" bytes")[0])
    assert size > 51_200
    assert "uploaded to https://rentcars-ml-dev.s3.us-east-1.amazonaws.com/esteira/_esteira/cloudformation/esteira-recsys/" \
        in stdout
    assert "esteira-recsys: created (CREATE_COMPLETE)" in stdout
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:recsys-workflow"
    assert len(json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])["States"]) > 60


def test_a_stack_over_cloudformations_1_mb_is_refused_by_validate_and_export(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS, projects)
    _many_steps(projects, 200)
    cfg_file = projects / "recsys" / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    cfg["runtime"]["env_vars"] = {f"APP_SETTING_{i}": "v" * 180 for i in range(30)}
    cfg_file.write_text(yaml.safe_dump(cfg))
    for argv in (["-m", "esteira", "validate"], ["-m", "asl_export", "recsys", "--out", str(tmp_path / "out")]):
        done = subprocess.run([sys.executable, *argv, "--projects-dir", str(projects)], capture_output=True, text=True)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "CloudFormation accepts at most 1000000" in done.stderr or "Step Functions accepts at most" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


# --- bounded waits. moto computes a change set and runs a stack at once, so these tests put moto's
# change set or stack in the state real CloudFormation shows (still computing, refused, still
# running, rolled back) right after the call that starts it; botocore's own waiters then poll moto's
# API. A timeout of 0 means one look and no sleep, so none of these tests sleeps.

STACK = "esteira-jobs"
TOPIC = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "jobs"}}}}
TAGS = {"esteira:project": "jobs"}


def _after(session: boto3.Session, operation: str, change: Callable[[Any], None]) -> None:
    """Once `operation` returns, `change` moto's change set (CreateChangeSet) or stack (ExecuteChangeSet)."""
    from moto.cloudformation.models import cloudformation_backends

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        backend = cloudformation_backends[ACCOUNT][REGION]
        if operation == "CreateChangeSet":
            change(backend.change_sets[parsed["Id"]])
        else:
            [stack] = [s for s in backend.stacks.values() if s.name == STACK]
            change(stack)

    session.events.register(f"after-call.cloudformation.{operation}", hook)


def _deploy_topic(session: boto3.Session, template: dict[str, Any] = TOPIC, **waits: float) -> DeployResult:
    return deploy_stack(session, STACK, template, account_id=ACCOUNT, tags=TAGS, say=lambda _: None, **waits)


def _set(obj: Any, **attrs: Any) -> None:
    for name, value in attrs.items():
        setattr(obj, name, value)


def test_waiter_config_bounds_the_wait_by_the_timeout() -> None:
    assert waiter_config(1800, 5) == {"Delay": 5, "MaxAttempts": 361}
    assert waiter_config(300, 5)["MaxAttempts"] == 61
    assert waiter_config(7, 5)["MaxAttempts"] == 2
    assert waiter_config(0, 5) == {"Delay": 5, "MaxAttempts": 1}  # look once, never sleep
    with pytest.raises(ValueError, match="poll_seconds"):
        Waits(poll_seconds=0)


def test_a_change_set_still_computing_at_the_timeout_names_stack_change_set_and_where_to_look(aws: None) -> None:
    session = boto3.Session(region_name=REGION)
    _after(session, "CreateChangeSet", lambda cs: _set(cs, status="CREATE_PENDING"))
    calls: list[str] = []
    session.events.register("before-call.cloudformation.DescribeChangeSet", lambda **_: calls.append("look"))
    with pytest.raises(DeployError) as caught:
        _deploy_topic(session, change_set_timeout_seconds=0.002, poll_seconds=0.001)
    message = str(caught.value)
    [summary] = boto3.client("cloudformation", region_name=REGION).list_change_sets(StackName=STACK)["Summaries"]
    assert message.splitlines() == [
        f"the change set of stack {STACK} is still CREATE_PENDING after 0.002 s; nothing was executed",
        f"  stack: {STACK}, region {REGION}",
        f"  change set: {summary['ChangeSetName']} ({summary['ChangeSetId']})",
        f"  look at: CloudFormation console > Stacks > {STACK} > Change sets > {summary['ChangeSetName']}",
    ]
    assert len(calls) == waiter_config(0.002, 0.001)["MaxAttempts"] > 1  # polled, then gave up


def test_a_refused_change_set_gives_its_reason(aws: None) -> None:
    reason = "Template format error: Unresolved resource dependencies [Queue] in the Resources block of the template"
    session = boto3.Session(region_name=REGION)
    _after(session, "CreateChangeSet", lambda cs: _set(cs, status="FAILED", status_reason=reason))
    with pytest.raises(DeployError) as caught:
        _deploy_topic(session, change_set_timeout_seconds=0)
    message = str(caught.value)
    assert message.splitlines()[0] == f"CloudFormation refused the change set of stack {STACK}: FAILED: {reason}"
    assert f"\n  stack: {STACK}, region {REGION}\n  change set: esteira-" in message
    assert f"\n  look at: CloudFormation console > Stacks > {STACK} > Change sets > esteira-" in message


def test_an_empty_change_set_is_no_change_and_is_deleted(aws: None) -> None:
    session = boto3.Session(region_name=REGION)
    assert _deploy_topic(session).action == "created"
    no_change = "The submitted information didn't contain changes. Submit different information to create a change set."
    _after(session, "CreateChangeSet", lambda cs: _set(cs, status="FAILED", status_reason=no_change))
    # a template esteira sees as different, in which CloudFormation finds nothing to change
    changed = {"Resources": {"Topic": {**TOPIC["Resources"]["Topic"], "Metadata": {"note": "only metadata"}}}}
    result = _deploy_topic(session, changed, change_set_timeout_seconds=0)
    assert result.action == "unchanged"
    cfn = boto3.client("cloudformation", region_name=REGION)
    summaries = cfn.list_change_sets(StackName=STACK)["Summaries"]
    assert [s["ExecutionStatus"] for s in summaries] == ["EXECUTE_COMPLETE"]  # only the create's (moto keeps it)


def test_a_stack_still_running_at_the_timeout_names_stack_change_set_and_where_to_look(aws: None) -> None:
    session = boto3.Session(region_name=REGION)
    _after(session, "ExecuteChangeSet", lambda stack: _set(stack, status="CREATE_IN_PROGRESS"))
    with pytest.raises(DeployError) as caught:
        _deploy_topic(session, timeout_seconds=0)
    message = str(caught.value)
    assert message.splitlines()[0] == (f"stack {STACK} is still CREATE_IN_PROGRESS after 0 s; "
                                       "CloudFormation goes on without esteira: deploy again once it ends")
    assert f"\n  stack: {STACK}, region {REGION}\n  change set: esteira-" in message
    assert ":changeSet/esteira-" in message
    assert message.endswith(f"\n  look at: CloudFormation console > Stacks > {STACK} > Events")


def test_a_stack_that_rolled_back_gives_the_failed_resources(aws: None) -> None:
    from moto.cloudformation.models import Event

    def roll_back(stack: Any) -> None:
        stack.status = "ROLLBACK_COMPLETE"
        stack.events.append(Event(stack.stack_id, stack.name, "Topic", "", "AWS::SNS::Topic", "CREATE_FAILED",
                                  "Resource handler returned message: \"Access Denied\"", None))

    session = boto3.Session(region_name=REGION)
    _after(session, "ExecuteChangeSet", roll_back)
    with pytest.raises(DeployError) as caught:
        _deploy_topic(session, timeout_seconds=0)
    message = str(caught.value)
    assert message.splitlines()[0] == f"stack {STACK} ended ROLLBACK_COMPLETE"
    assert f"\n  stack: {STACK}, region {REGION}\n  change set: esteira-" in message
    assert message.endswith(f"\n  look at: CloudFormation console > Stacks > {STACK} > Events"
                            '\n  failed: Topic (AWS::SNS::Topic): Resource handler returned message: "Access Denied"')
