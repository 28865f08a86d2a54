"""`trigger: {s3: ...}`: an object landing in S3 starts the pipeline, with the same values on both orchestrators.

The rule's pattern is judged by moto's EventBridge pattern matcher against AWS's own sample event
(tests/fixtures/s3_object_created_event.json, from the S3 user guide's "EventBridge event message
structure"); the Step Functions side really runs in moto (tests/sfn_harness.py); in moto an S3 put
on a bucket with EventBridge notifications reaches the stack's queue through the stack's rule.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.events.models import EventPattern
from sfn_harness import Execution, run_execution
from test_bad_input import BASE, sub

from conftest import PROJECTS
from esteira.asl import render_state_machine
from esteira.compile import compile_aws
from esteira.config import load_project
from esteira.deploy import DeployError, check_trigger_buckets, deploy_stack
from esteira.environments import load_environments
from esteira.errors import ConfigError
from esteira.plan import Plan, Target, build_plan
from esteira.s3_trigger import INPUT_TRANSFORMER, event_pattern, key_matches, run_values_from_event

FIXTURE = Path(__file__).parent / "fixtures" / "s3_object_created_event.json"
NODE_BIN = Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "asl-validator"
TRIGGER = 'trigger:\n  s3:\n    bucket: "rentcars-landing-{env}"\n    prefix: "incoming/"\n    suffix: ".parquet"\n'


def triggered(text: str = BASE, orchestrator: str = "step_functions", trigger: str = TRIGGER) -> str:
    return text.replace('orchestrator: "step_functions"', f'orchestrator: "{orchestrator}"') + trigger


def sample(bucket: str = "rentcars-landing-dev", key: str = "incoming/2026-11-24/sales.parquet",
           detail_type: str = "Object Created") -> dict[str, Any]:
    """AWS's sample event with this bucket and key."""
    event: dict[str, Any] = json.loads(FIXTURE.read_text())
    event["detail"]["bucket"]["name"] = bucket
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["object"]["key"] = key
    event["detail-type"] = detail_type
    return event


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """moto's EventBridge pattern matcher, on the pattern as the rule holds it (JSON text)."""
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def aws_input_transform(transformer: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """EventBridge's InputTransformer as AWS documents it for a JSON template: a placeholder outside
    quotes becomes the JSON value of its path. (moto's EventTemplateParser pastes a string's text
    without quotes, so it cannot evaluate such a template; moto's S3 -> EventBridge path applies no
    transformer at all.)"""
    values = {}
    for name, path in transformer["InputPathsMap"].items():
        node: Any = event
        for part in path.removeprefix("$.").split("."):
            node = node[part]
        values[name] = node
    return json.loads(re.sub(r"<([a-z]+)>", lambda m: json.dumps(values[m.group(1)]),
                             transformer["InputTemplate"]))


def plan_of(write_project: Callable[[str, str], Path], text: str, env: str = "dev") -> Plan:
    file = write_project("demo", text)
    return compile_aws(load_project(file), Target.aws_env(load_environments(file.parent.parent / "environments.yaml"),
                                                          env)).plan


# --- the rule's pattern ---------------------------------------------------------------------

def test_the_pattern_matches_aws_sample_event_and_not_others() -> None:
    pattern = event_pattern("rentcars-landing-dev", "incoming/", ".parquet")
    assert matches(pattern, sample())
    assert not matches(pattern, sample(bucket="rentcars-landing-prd"))
    assert not matches(pattern, sample(key="outgoing/2026-11-24/sales.parquet"))
    assert not matches(pattern, sample(key="incoming/2026-11-24/sales.csv"))
    assert not matches(pattern, sample(key="incoming/2026-11-24/sales.parquet.tmp"))
    deleted = sample(detail_type="Object Deleted")
    deleted["detail"]["reason"] = "DeleteObject"
    deleted["detail"]["deletion-type"] = "Permanently Deleted"
    assert not matches(pattern, deleted)
    other_source = sample()
    other_source["source"] = "custom.s3"
    assert not matches(pattern, other_source)


@pytest.mark.parametrize(("prefix", "suffix"), [
    ("incoming/", ".parquet"), ("incoming/", ""), ("", ".parquet"), ("", ""), ("a*b/", "*.csv"),
    ("back\\slash/", ".x"), ("ab", "bc"), ("dados/ç/", ".json"), ('q"uote/', "'s"),
])
def test_the_python_predicate_is_the_rules_pattern(prefix: str, suffix: str) -> None:
    """`esteira trigger` checks a key with key_matches; EventBridge with the pattern: they agree."""
    keys = ["", "incoming/x.parquet", "incoming/.parquet", "x.parquet", "incoming/x.csv", "a*b/1*.csv",
            "axb/1.csv", "a*b/1.csvx", "back\\slash/f.x", "backslash/f.x", "abc", "abbc", "ab", "bc",
            "dados/ç/1.json", 'q"uote/x\'s', "incoming/sub/deeper/y.parquet"]
    pattern = event_pattern("rentcars-landing-dev", prefix, suffix)
    for key in keys:
        assert matches(pattern, sample(key=key)) == key_matches(key, prefix, suffix), (prefix, suffix, key)


def test_the_run_values_of_an_event_are_what_step_functions_gets() -> None:
    event = sample(key='incoming/quote"and\\backslash ç.parquet')
    values = run_values_from_event(event)
    assert values == aws_input_transform(INPUT_TRANSFORMER, event) == {
        "run_date": "2021-11-12T00:00:00Z", "run_id": "17793124-05d4-b198-2fde-7ededc63b103",
        "trigger_bucket": "rentcars-landing-dev", "trigger_key": 'incoming/quote"and\\backslash ç.parquet'}
    with pytest.raises(ValueError, match="not an S3 EventBridge event"):
        run_values_from_event({"id": "x", "detail": {}})


# --- config mistakes ------------------------------------------------------------------------

@pytest.mark.parametrize(("trigger", "path", "words"), [
    ('trigger:\n  s3:\n    bucket: "Rentcars_Landing"\n', "trigger.s3.bucket", "is not an S3 bucket name"),
    ('trigger:\n  s3:\n    bucket: "ab"\n', "trigger.s3.bucket", "3-63 lower-case letters"),
    ('trigger:\n  s3:\n    bucket: "my..bucket"\n', "trigger.s3.bucket", "two adjacent dots"),
    ('trigger:\n  s3:\n    bucket: "192.168.1.10"\n', "trigger.s3.bucket", "formatted as an IP address"),
    ('trigger:\n  s3:\n    bucket: "xn--bucket"\n', "trigger.s3.bucket", "prefix 'xn--' is reserved"),
    ('trigger:\n  s3:\n    bucket: "data--x-s3"\n', "trigger.s3.bucket", "suffix '--x-s3' is reserved"),
    ('trigger:\n  s3:\n    bucket: "landing-{env}-"\n', "trigger.s3.bucket", "(in dev)"),
    ('trigger:\n  s3:\n    bucket: "landing"\n    prefix: "/incoming/"\n', "trigger.s3.prefix",
     "write 'incoming/'"),
    ('trigger:\n  s3:\n    bucket: "landing"\n    suffix: ".csv\\n"\n', "trigger.s3.suffix", "control character"),
    ('trigger:\n  s3:\n    bucket: "landing"\n    prefix: "in/${x}/"\n', "trigger.s3.prefix", "reference"),
    ('trigger:\n  s3:\n    bucket: "landing"\n    prefix: "' + "p" * 1025 + '"\n', "trigger.s3.prefix",
     "is 1025 bytes"),
    ('trigger:\n  s3:\n    bucket: "landing"\n    prefix: "' + "p" * 600 + '"\n    suffix: "' + "s" * 600 + '"\n',
     "trigger.s3.suffix", "no object could ever match"),
    ('trigger:\n  s3:\n    bucket: "landing"\n    sufix: ".csv"\n', "trigger.s3.sufix", "did you mean 'suffix'"),
    ('trigger:\n  sqs: {queue: x}\n', "trigger.sqs", "unknown field"),
])
def test_a_bad_trigger_is_refused_with_path_line_and_what_is_valid(
    write_project: Callable[[str, str], Path], trigger: str, path: str, words: str,
) -> None:
    file = write_project("demo", BASE + trigger)
    with pytest.raises(ConfigError) as info:
        load_project(file)
    lines = [line for line in str(info.value).splitlines() if f" {path}: " in line and words in line]
    assert lines, str(info.value)
    assert re.match(rf"  {re.escape(str(file))}:\d+: ", lines[0]), lines[0]


def test_trigger_names_are_esteiras_in_env_vars(write_project: Callable[[str, str], Path]) -> None:
    file = write_project("demo", sub('    ENV: "dev"\n', '    ENV: "dev"\n    TRIGGER_KEY: "x"\n')(BASE))
    with pytest.raises(ConfigError, match="TRIGGER_KEY is set by esteira in every step"):
        load_project(file)


def test_a_trigger_on_the_pipelines_own_data_is_refused(write_project: Callable[[str, str], Path]) -> None:
    """data_root is s3://rentcars-ml-dev/esteira: a run writing there would start the next one."""
    text = BASE + 'trigger:\n  s3:\n    bucket: "rentcars-ml-{env}"\n    prefix: "esteira/"\n'
    with pytest.raises(ConfigError, match=r"trigger\.s3\.prefix: the pipeline writes its data under "
                                          r"s3://rentcars-ml-dev/esteira/demo/.*every run would start another"):
        plan_of(write_project, text)
    plan_of(write_project, text.replace('prefix: "esteira/"', 'prefix: "landing/"'))  # another prefix is fine


# --- Step Functions ---------------------------------------------------------------------------

def test_the_state_machine_gives_every_step_the_objects_values_and_others_empty_ones(
    write_project: Callable[[str, str], Path], tmp_path: Path,
) -> None:
    plan = plan_of(write_project, triggered())
    event = sample()
    result = run_execution(plan, Execution(execution_input=aws_input_transform(INPUT_TRANSFORMER, event)))
    assert result.status == "SUCCEEDED", result.failures()
    expected = {"RUN_DATE": "2021-11-12T00:00:00Z", "RUN_ID": event["id"],
                "TRIGGER_BUCKET": "rentcars-landing-dev", "TRIGGER_KEY": "incoming/2026-11-24/sales.parquet"}
    assert [{k: r.environment[k] for k in expected} for r in result.runs] == [expected] * len(plan.steps)

    scheduled = {"run_date": "2026-11-24T03:00:00Z", "run_id": "sched-1"}
    result = run_execution(plan, Execution(execution_input=scheduled))
    assert {(r.environment["RUN_ID"], r.environment["TRIGGER_BUCKET"], r.environment["TRIGGER_KEY"])
            for r in result.runs} == {("sched-1", "", "")}
    result = run_execution(plan, Execution(name="by-hand"))
    assert {(r.environment["RUN_ID"], r.environment["TRIGGER_KEY"]) for r in result.runs} == {("by-hand", "")}

    # both validators accept it
    machine = tmp_path / "machine.asl.json"
    machine.write_text(json.dumps(render_state_machine(plan)))
    lint = subprocess.run([str(Path(sys.executable).parent / "statelint"), str(machine)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    node = subprocess.run([str(NODE_BIN), "--json-path", str(machine)], capture_output=True, text=True)
    assert node.returncode == 0, node.stdout + node.stderr


def test_a_project_without_trigger_renders_as_before(write_project: Callable[[str, str], Path]) -> None:
    plan = plan_of(write_project, BASE)
    assert plan.trigger is None
    assert not {"TRIGGER_BUCKET", "TRIGGER_KEY"} & {k for k, _ in plan.steps[0].environment}
    assert "esteira.run-from-trigger" not in render_state_machine(plan)["States"]


# --- the stack ----------------------------------------------------------------------------------

@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    """The repo's projects plus one triggered project of each owner, exported for dev and prd."""
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS, projects)
    for name, owner in (("landing-sfn", "step_functions"), ("landing-af", "airflow")):
        (projects / name).mkdir()
        (projects / name / "config.yaml").write_text(triggered(BASE.replace("project_name: demo", f"project_name: {name}"),
                                                               owner))
    out = tmp_path / "out"
    for env in ("dev", "prd"):
        done = subprocess.run([sys.executable, "-m", "esteira", "export", "landing-sfn", "landing-af", "--env", env,
                               "--projects-dir", str(projects), "--out", str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return out


def test_triggered_stacks_pass_cfn_lint_and_are_least_privilege(stacks: Path) -> None:
    templates = sorted(str(p) for p in stacks.glob("*/*/stack.cfn.json"))
    assert len(templates) == 4
    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), *templates], capture_output=True, text=True,
                          env={**os.environ})
    assert lint.returncode == 0, lint.stdout + lint.stderr

    sfn = json.loads((stacks / "prd" / "landing-sfn" / "stack.cfn.json").read_text())["Resources"]
    rule = sfn["TriggerRule"]["Properties"]
    assert rule["EventPattern"] == event_pattern("rentcars-landing-prd", "incoming/", ".parquet")
    assert rule["State"] == "ENABLED"  # prd: schedules_enabled
    [target] = rule["Targets"]
    assert target["Arn"] == {"Ref": "StateMachine"} and target["InputTransformer"] == INPUT_TRANSFORMER
    role = sfn["TriggerRole"]["Properties"]
    [statement] = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["states:StartExecution"] and statement["Resource"] == {"Ref": "StateMachine"}
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"].endswith(":rule/s3-landing-sfn")
    assert "TriggerQueue" not in sfn  # Step Functions owns production: the event goes there only

    dev = json.loads((stacks / "dev" / "landing-af" / "stack.cfn.json").read_text())
    airflow = dev["Resources"]
    assert airflow["TriggerRule"]["Properties"]["State"] == "DISABLED"  # dev: schedules_enabled false
    [target] = airflow["TriggerRule"]["Properties"]["Targets"]
    assert target == {"Id": "airflow-queue", "Arn": {"Fn::GetAtt": ["TriggerQueue", "Arn"]}}  # the raw event
    assert "TriggerRole" not in airflow  # an SQS target is authorised by the queue's policy, not a role
    [allow] = airflow["TriggerQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Action"] == "sqs:SendMessage" and allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"].endswith(":rule/s3-landing-af")
    assert dev["Outputs"]["TriggerQueueUrl"] == {"Value": {"Ref": "TriggerQueue"}}


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "MOTO_ACCOUNT_ID": "111111111111"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


# moto's CloudFormation creates no AWS::SQS::QueuePolicy (and moto's SQS enforces none): cfn-lint checks it
@pytest.mark.filterwarnings("ignore:Tried to parse AWS.{2}SQS.{2}QueuePolicy:UserWarning")
def test_in_moto_an_s3_put_reaches_the_queue_through_the_stacks_rule_then_starts_the_run(
    stacks: Path, write_project: Callable[[str, str], Path], moto_aws: None,
) -> None:
    """The stack's rule, queue and queue policy, created by moto's CloudFormation; a put on a bucket with
    EventBridge notifications lands on the queue once, and a put elsewhere does not."""
    template = json.loads((stacks / "dev" / "landing-af" / "stack.cfn.json").read_text())
    trigger_part = {name: resource for name, resource in template["Resources"].items() if name.startswith("Trigger")}
    trigger_part["TriggerRule"]["Properties"]["State"] = "ENABLED"  # as in prd
    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName="esteira-landing-af", TemplateBody=json.dumps(
        {"AWSTemplateFormatVersion": "2010-09-09", "Resources": trigger_part,
         "Outputs": {"TriggerQueueUrl": template["Outputs"]["TriggerQueueUrl"]}}))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="esteira-landing-af")
               ["Stacks"][0]["Outputs"]}
    queue_url = outputs["TriggerQueueUrl"]
    plan = plan_of(write_project, triggered(orchestrator="airflow"))
    assert plan.trigger is not None and plan.trigger.queue_url is not None
    assert queue_url.endswith("/landing-af-s3-events")  # the name the Airflow side derives (esteira.naming)
    assert plan.trigger.queue_url == "https://sqs.us-east-1.amazonaws.com/111111111111/demo-s3-events"

    s3 = boto3.client("s3")
    for bucket in ("rentcars-landing-dev", "rentcars-other-dev"):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "EventBridgeConfiguration": {}})
    s3.put_object(Bucket="rentcars-landing-dev", Key="incoming/2026-11-24/sales.parquet", Body=b"x")
    s3.put_object(Bucket="rentcars-landing-dev", Key="incoming/2026-11-24/notes.txt", Body=b"x")
    s3.put_object(Bucket="rentcars-other-dev", Key="incoming/2026-11-24/sales.parquet", Body=b"x")
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    [event] = [json.loads(m["Body"]) for m in messages]
    values = run_values_from_event(event)
    assert values["trigger_bucket"] == "rentcars-landing-dev"
    assert values["trigger_key"] == "incoming/2026-11-24/sales.parquet"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", values["run_date"]), values

    # the same event starts the Step Functions run of a project Step Functions owns
    sfn_plan = plan_of(write_project, triggered())
    result = run_execution(sfn_plan, Execution(execution_input=aws_input_transform(INPUT_TRANSFORMER, event)))
    assert result.status == "SUCCEEDED", result.failures()
    assert {(r.environment["RUN_ID"], r.environment["RUN_DATE"], r.environment["TRIGGER_KEY"])
            for r in result.runs} == {(values["run_id"], values["run_date"], values["trigger_key"])}


def test_local_target_plans_the_trigger_without_a_queue(write_project: Callable[[str, str], Path]) -> None:
    file = write_project("demo", triggered(orchestrator="airflow"))
    plan = build_plan(load_project(file), Target.local(load_environments(file.parent.parent / "environments.yaml")))
    assert plan.trigger is not None
    assert (plan.trigger.bucket, plan.trigger.queue_url) == ("rentcars-landing-local", None)


def _remember_bucket(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["esteira_bucket"] = params["Bucket"]


def _with_eventbridge_configuration(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """moto 5.2.5 stores a bucket's EventBridgeConfiguration (and sends its events) but leaves it out of
    GetBucketNotificationConfiguration's answer; AWS returns `"EventBridgeConfiguration": {}` then."""
    from moto.s3.models import s3_backends

    bucket = s3_backends["111111111111"]["aws"].get_bucket(context["esteira_bucket"])
    if bucket.notification_configuration is not None and bucket.notification_configuration.event_bridge is not None:
        parsed["EventBridgeConfiguration"] = {}


def test_deploy_refuses_a_trigger_bucket_that_sends_no_events_to_eventbridge(stacks: Path, moto_aws: None) -> None:
    template = json.loads((stacks / "prd" / "landing-af" / "stack.cfn.json").read_text())
    session = boto3.Session(region_name="us-east-1")
    session.events.register("before-parameter-build.s3.GetBucketNotificationConfiguration", _remember_bucket)
    session.events.register("after-call.s3.GetBucketNotificationConfiguration", _with_eventbridge_configuration)
    with pytest.raises(DeployError, match="rentcars-landing-prd does not exist in this account"):
        check_trigger_buckets(session, template)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="rentcars-landing-prd")
    with pytest.raises(DeployError) as info:
        deploy_stack(session, "esteira-landing-af", template, account_id="111111111111", tags={}, say=print)
    message = str(info.value)
    assert "rentcars-landing-prd does not send its events to Amazon EventBridge" in message
    assert "Amazon EventBridge: On" in message and "put-bucket-notification-configuration" in message
    assert not boto3.client("cloudformation").list_stacks()["StackSummaries"]  # refused before any change
    s3.put_bucket_notification_configuration(Bucket="rentcars-landing-prd",
                                             NotificationConfiguration={"EventBridgeConfiguration": {}})
    check_trigger_buckets(session, template)
    other = boto3.client("s3", region_name="eu-west-1")
    other.create_bucket(Bucket="rentcars-landing-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    moved = json.loads(json.dumps(template).replace("rentcars-landing-prd", "rentcars-landing-eu"))
    with pytest.raises(DeployError, match="is in eu-west-1, but the stack deploys to us-east-1"):
        check_trigger_buckets(session, moved)
    dev = json.loads((stacks / "dev" / "landing-af" / "stack.cfn.json").read_text())
    check_trigger_buckets(session, dev)  # dev's rule is DISABLED: its bucket is not needed yet
