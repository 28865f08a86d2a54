"""Create or update a project's CloudFormation stack through a change set, and say what changed.

A change set shows what will change before anything does, and a stack that did not change is
left alone (no empty change set, no new execution): a CI job can deploy on every push. The
account of the credentials is checked against environments.yaml first, so prd's template can
never land in dev's account or the other way round.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_INLINE_TEMPLATE_BYTES = 51_200  # CloudFormation's TemplateBody limit; larger ones go through S3
MAX_TEMPLATE_BYTES = 1_000_000  # TemplateURL's limit (esteira.compile refuses larger stacks earlier)
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_UNUSABLE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED"}
# How long a deploy waits before giving up (CloudFormation itself goes on): a change set is computed
# in seconds, a stack with an auto scaling group and ECS capacity provider takes minutes.
CHANGE_SET_TIMEOUT_SECONDS = 5 * 60
STACK_TIMEOUT_SECONDS = 30 * 60


class DeployError(Exception):
    """The deploy did not happen or did not finish; the message says why and what to do."""


@dataclass
class DeployResult:
    stack: str
    action: str  # "created", "updated" or "unchanged"
    changes: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Waits:
    """How often and how long a deploy polls CloudFormation: bounded, so a stuck change set or stack
    fails the CI job with a message instead of hanging it until the runner's own limit."""

    poll_seconds: float = 5.0
    change_set_timeout_seconds: float = CHANGE_SET_TIMEOUT_SECONDS
    stack_timeout_seconds: float = STACK_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.poll_seconds <= 0:  # a 0 delay would spin on DescribeStacks until throttled
            raise ValueError(f"poll_seconds must be > 0, not {self.poll_seconds}")


def deploy_stack(session: Any, stack: str, template: dict[str, Any], *, account_id: str,
                 tags: dict[str, str], say: Callable[[str], None] = print,
                 poll_seconds: float = 5.0, template_store: str | None = None,
                 timeout_seconds: float = STACK_TIMEOUT_SECONDS,
                 change_set_timeout_seconds: float = CHANGE_SET_TIMEOUT_SECONDS) -> DeployResult:
    """Bring `stack` to `template`; raises DeployError with the reason when it cannot.

    A template over CloudFormation's inline limit is uploaded to `template_store`
    (s3://bucket/prefix) and deployed by its URL, as `aws cloudformation deploy --s3-bucket` does.
    The change set is waited for at most `change_set_timeout_seconds`, its execution at most
    `timeout_seconds`, polling every `poll_seconds` (0 timeouts: look once, never sleep).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    waits = Waits(poll_seconds, change_set_timeout_seconds, timeout_seconds)
    try:
        return _deploy(session, stack, template, account_id, tags, say, waits, template_store)
    except (ClientError, BotoCoreError) as exc:  # AWS said no: its message is the useful part
        raise DeployError(f"{stack}: {exc}") from None


def waiter_config(timeout_seconds: float, poll_seconds: float) -> dict[str, float | int]:
    """A botocore WaiterConfig giving up after `timeout_seconds`: waiters count attempts, not time;
    they look at once, then every `poll_seconds`, so 0 means one look and no sleep."""
    return {"Delay": poll_seconds, "MaxAttempts": 1 + max(0, int(timeout_seconds // poll_seconds))}


def _deploy(session: Any, stack: str, template: dict[str, Any], account_id: str, tags: dict[str, str],
            say: Callable[[str], None], waits: Waits, template_store: str | None) -> DeployResult:
    check_account(session, account_id)
    check_trigger_buckets(session, template)
    template = without_past_start_dates(template, time.time(), say)
    body = json.dumps(template, separators=(",", ":"), sort_keys=True)
    size = len(body.encode())
    if size > MAX_TEMPLATE_BYTES:
        raise DeployError(f"the template of {stack} is {size} bytes; CloudFormation takes at most "
                          f"{MAX_TEMPLATE_BYTES} (use fewer or smaller steps)")
    source: dict[str, str] = {"TemplateBody": body}
    if size > MAX_INLINE_TEMPLATE_BYTES:
        if template_store is None:
            raise DeployError(f"the template of {stack} is {size} bytes, over the {MAX_INLINE_TEMPLATE_BYTES} "
                              "CloudFormation takes inline, and no S3 location was given to upload it to")
        source = {"TemplateURL": _upload(session, template_store, stack, body)}
        say(f"{stack}: template of {size} bytes uploaded to {source['TemplateURL']}")
    cfn = session.client("cloudformation")
    current = _describe(cfn, stack)
    if current is not None:
        status = current["StackStatus"]
        if status in _UNUSABLE:
            raise DeployError(f"stack {stack} is {status} and cannot be updated; look at its events, then "
                              f"delete it (aws cloudformation delete-stack --stack-name {stack}) and deploy again")
        if status.endswith("_IN_PROGRESS"):
            raise DeployError(f"stack {stack} is {status}: another deploy is running; try again when it ends")
        if _same_template(cfn, stack, template):
            say(f"{stack}: no changes")
            return DeployResult(stack, "unchanged", outputs=_outputs(current))
    kind = "UPDATE" if current is not None else "CREATE"
    name = f"esteira-{time.strftime('%Y%m%d-%H%M%S')}"
    created = cfn.create_change_set(
        StackName=stack, ChangeSetName=name, ChangeSetType=kind, **source,
        Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        Description="esteira deploy",
    )
    where = _Where(stack, created["StackId"], name, created["Id"], cfn.meta.region_name)
    change_set = _wait_change_set(cfn, where, waits)
    if change_set is None:
        say(f"{stack}: no changes")
        return DeployResult(stack, "unchanged", outputs=_outputs(current or {}))
    changes = [_describe_change(c) for c in change_set.get("Changes", [])]
    say(f"{stack}: {len(changes)} change(s) to {'create' if kind == 'CREATE' else 'update'}:")
    for line in changes:
        say(f"  {line}")
    cfn.execute_change_set(StackName=where.stack_id, ChangeSetName=where.change_set_id)
    final = _wait_stack(cfn, where, kind, waits)
    action = "created" if kind == "CREATE" else "updated"
    say(f"{stack}: {action} ({final['StackStatus']})")
    return DeployResult(stack, action, changes, _outputs(final))


def without_past_start_dates(template: dict[str, Any], now: float, say: Callable[[str], None]) -> dict[str, Any]:
    """The template minus any schedule StartDate already past: it would change nothing (the schedule
    fires from now on either way), and EventBridge Scheduler refuses a StartDate in the past."""
    from datetime import datetime

    resources = dict(template.get("Resources", {}))
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        start = props.get("StartDate") if resource.get("Type") == "AWS::Scheduler::Schedule" else None
        if start and datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() <= now:
            resources[name] = {**resource, "Properties": {k: v for k, v in props.items() if k != "StartDate"}}
            say(f"{name}: start_date {start} is past; the schedule fires from now on")
    return {**template, "Resources": resources}


def _upload(session: Any, store: str, stack: str, body: str) -> str:
    """Put the template at s3://bucket/prefix/cloudformation/<stack>/<sha256>.json; its https URL."""
    bucket, _, prefix = store.removeprefix("s3://").partition("/")
    digest = hashlib.sha256(body.encode()).hexdigest()[:32]
    key = "/".join(part for part in (prefix.strip("/"), "cloudformation", stack, f"{digest}.json") if part)
    s3 = session.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
    region = s3.meta.region_name
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"


def trigger_buckets(template: dict[str, Any]) -> list[str]:
    """The buckets whose S3 events the template's ENABLED EventBridge rules listen to (esteira.s3_trigger;
    a DISABLED rule, as in dev, fires nothing whatever its bucket)."""
    buckets = []
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Events::Rule" and props.get("State") == "ENABLED":
            pattern = props.get("EventPattern", {})
            if pattern.get("source") == ["aws.s3"]:
                buckets.extend(pattern.get("detail", {}).get("bucket", {}).get("name", []))
    return buckets


def check_trigger_buckets(session: Any, template: dict[str, Any]) -> None:
    """A trigger's bucket must exist in the stack's account and region and send its events to EventBridge,
    or the rule deploys fine and never fires: refuse the deploy, saying what to switch on."""
    from botocore.exceptions import ClientError

    if not (buckets := trigger_buckets(template)):
        return
    s3 = session.client("s3")
    region = s3.meta.region_name
    for bucket in buckets:
        try:
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
            config = s3.get_bucket_notification_configuration(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket", "404"):
                raise DeployError(f"the trigger's bucket {bucket} does not exist in this account; create it (in "
                                  f"{region}), or fix trigger.s3.bucket") from None
            raise DeployError(f"cannot read the trigger's bucket {bucket}: {exc} (the deploying credentials need "
                              "s3:GetBucketLocation and s3:GetBucketNotification on it)") from None
        if location != region:
            raise DeployError(f"the trigger's bucket {bucket} is in {location}, but the stack deploys to {region}: S3 "
                              "sends its events to EventBridge in the bucket's own region, where this rule is not")
        if "EventBridgeConfiguration" not in config:
            raise DeployError(
                f"the trigger's bucket {bucket} does not send its events to Amazon EventBridge, so its rule would "
                "never fire: switch it on (S3 console > the bucket > Properties > Event notifications > Amazon "
                "EventBridge: On), or with the CLI, keeping the bucket's other notifications: aws s3api "
                f"get-bucket-notification-configuration --bucket {bucket}, add \"EventBridgeConfiguration\": {{}} to "
                f"it, and aws s3api put-bucket-notification-configuration --bucket {bucket} "
                "--notification-configuration file://notifications.json")


def check_account(session: Any, account_id: str) -> None:
    try:
        actual = session.client("sts").get_caller_identity()["Account"]
    except Exception as exc:  # no credentials, expired token, no network: one clear message
        raise DeployError(f"cannot use the AWS credentials: {exc}") from None
    if actual != account_id:
        raise DeployError(f"the AWS credentials are for account {actual}, but environments.yaml says this "
                          f"environment is account {account_id}; refusing to deploy to the wrong account")


def _describe(cfn: Any, stack: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        described: dict[str, Any] = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        return described
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def _same_template(cfn: Any, stack: str, template: dict[str, Any]) -> bool:
    body = cfn.get_template(StackName=stack, TemplateStage="Original")["TemplateBody"]
    deployed = json.loads(body) if isinstance(body, str) else body
    return bool(deployed == template)


@dataclass(frozen=True)
class _Where:
    """The stack and change set a wait is about: a failed wait says which, where, and where to look."""

    stack: str
    stack_id: str
    change_set: str
    change_set_id: str
    region: str

    def error(self, headline: str, look: str, details: list[str] | None = None) -> DeployError:
        lines = [f"stack: {self.stack}, region {self.region}",
                 f"change set: {self.change_set} ({self.change_set_id})",
                 f"look at: CloudFormation console > Stacks > {self.stack} > {look}", *(details or [])]
        return DeployError(headline + "".join(f"\n  {line}" for line in lines))


def _wait_change_set(cfn: Any, where: _Where, waits: Waits) -> dict[str, Any] | None:
    """The change set once computed; None when it holds no change (then it is deleted)."""
    from botocore.exceptions import WaiterError

    try:
        cfn.get_waiter("change_set_create_complete").wait(
            StackName=where.stack_id, ChangeSetName=where.change_set_id,
            WaiterConfig=waiter_config(waits.change_set_timeout_seconds, waits.poll_seconds))
    except WaiterError as exc:
        # the waiter's last response: the operation's output or an error (botocore-stubs types only the error)
        last: Mapping[str, Any] = exc.last_response or {}
        status = last.get("Status") or last.get("Error", {}).get("Code", "UNKNOWN")  # an error: its code
        reason = last.get("StatusReason") or last.get("Error", {}).get("Message") or "no reason given"
        if status == "FAILED" and any(text in reason for text in _NO_CHANGES):
            cfn.delete_change_set(StackName=where.stack_id, ChangeSetName=where.change_set_id)
            return None
        look = f"Change sets > {where.change_set}"
        if status in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
            raise where.error(f"the change set of stack {where.stack} is still {status} after "
                              f"{_duration(waits.change_set_timeout_seconds)}; nothing was executed", look) from None
        raise where.error(f"CloudFormation refused the change set of stack {where.stack}: {status}: {reason}",
                          look) from None
    change_set: dict[str, Any] = cfn.describe_change_set(StackName=where.stack_id, ChangeSetName=where.change_set_id)
    return change_set


def _wait_stack(cfn: Any, where: _Where, kind: str, waits: Waits) -> dict[str, Any]:
    """The stack once the change set's execution ended well; DeployError naming where to look when it
    failed, or is still running at the timeout (CloudFormation goes on without us)."""
    from botocore.exceptions import WaiterError

    waiter = "stack_create_complete" if kind == "CREATE" else "stack_update_complete"
    try:
        cfn.get_waiter(waiter).wait(StackName=where.stack_id,
                                    WaiterConfig=waiter_config(waits.stack_timeout_seconds, waits.poll_seconds))
    except WaiterError as exc:
        # the waiter's last response: the operation's output or an error (botocore-stubs types only the error)
        last: Mapping[str, Any] = exc.last_response or {}
        current = (last.get("Stacks") or [{}])[0]
        status = current.get("StackStatus") or last.get("Error", {}).get("Code", "UNKNOWN")
        reason = current.get("StackStatusReason") or last.get("Error", {}).get("Message", "")
        if status.endswith("_IN_PROGRESS"):
            headline = (f"stack {where.stack} is still {status} after {_duration(waits.stack_timeout_seconds)}; "
                        "CloudFormation goes on without esteira: deploy again once it ends")
        else:
            headline = f"stack {where.stack} ended {status}"
        failed = [f"failed: {line}" for line in _failed_events(cfn, where.stack_id)]
        raise where.error(headline + (f": {reason}" if reason else ""), "Events", failed) from None
    stack: dict[str, Any] = cfn.describe_stacks(StackName=where.stack_id)["Stacks"][0]
    return stack


def _failed_events(cfn: Any, stack_id: str) -> list[str]:
    """The latest resource failures, the reason a deploy failed more often than the stack's own status."""
    from botocore.exceptions import ClientError

    try:
        events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    except ClientError:  # the message without them still says where to look
        return []
    return [f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
            for e in events if e["ResourceStatus"].endswith("_FAILED")][:10]


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _describe_change(change: dict[str, Any]) -> str:
    rc = change.get("ResourceChange", {})
    replacement = rc.get("Replacement")
    extra = " (replaced)" if replacement == "True" else ""
    return f"{rc.get('Action', '?'):6} {rc.get('LogicalResourceId', '?')} {rc.get('ResourceType', '')}{extra}"


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
