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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_INLINE_TEMPLATE_BYTES = 51_200  # CloudFormation's TemplateBody limit; larger ones go through S3
MAX_TEMPLATE_BYTES = 1_000_000  # TemplateURL's limit (esteira.compile refuses larger stacks earlier)
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_UNUSABLE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED"}


class DeployError(Exception):
    """The deploy did not happen or did not finish; the message says why and what to do."""


@dataclass
class DeployResult:
    stack: str
    action: str  # "created", "updated" or "unchanged"
    changes: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def deploy_stack(session: Any, stack: str, template: dict[str, Any], *, account_id: str,
                 tags: dict[str, str], say: Callable[[str], None] = print,
                 poll_seconds: float = 5.0, template_store: str | None = None) -> DeployResult:
    """Bring `stack` to `template`; raises DeployError with the reason when it cannot.

    A template over CloudFormation's inline limit is uploaded to `template_store`
    (s3://bucket/prefix) and deployed by its URL, as `aws cloudformation deploy --s3-bucket` does.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _deploy(session, stack, template, account_id, tags, say, poll_seconds, template_store)
    except (ClientError, BotoCoreError) as exc:  # AWS said no: its message is the useful part
        raise DeployError(f"{stack}: {exc}") from None


def _deploy(session: Any, stack: str, template: dict[str, Any], account_id: str, tags: dict[str, str],
            say: Callable[[str], None], poll_seconds: float, template_store: str | None) -> DeployResult:
    check_account(session, account_id)
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
    cfn.create_change_set(
        StackName=stack, ChangeSetName=name, ChangeSetType=kind, **source,
        Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        Description="esteira deploy",
    )
    change_set = _wait_change_set(cfn, stack, name, poll_seconds)
    if change_set is None:
        say(f"{stack}: no changes")
        return DeployResult(stack, "unchanged", outputs=_outputs(current or {}))
    changes = [_describe_change(c) for c in change_set.get("Changes", [])]
    say(f"{stack}: {len(changes)} change(s) to {'create' if kind == 'CREATE' else 'update'}:")
    for line in changes:
        say(f"  {line}")
    cfn.execute_change_set(StackName=stack, ChangeSetName=name)
    final = _wait_stack(cfn, stack, poll_seconds)
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
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def _same_template(cfn: Any, stack: str, template: dict[str, Any]) -> bool:
    body = cfn.get_template(StackName=stack, TemplateStage="Original")["TemplateBody"]
    deployed = json.loads(body) if isinstance(body, str) else body
    return bool(deployed == template)


def _wait_change_set(cfn: Any, stack: str, name: str, poll: float) -> dict[str, Any] | None:
    """The change set once computed; None when it holds no change (then it is deleted)."""
    while True:
        change_set = cfn.describe_change_set(StackName=stack, ChangeSetName=name)
        status = change_set["Status"]
        if status == "CREATE_COMPLETE":
            return change_set
        if status == "FAILED":
            reason = change_set.get("StatusReason", "")
            if any(text in reason for text in _NO_CHANGES):
                cfn.delete_change_set(StackName=stack, ChangeSetName=name)
                return None
            raise DeployError(f"CloudFormation refused the change set of {stack}: {reason}")
        time.sleep(poll)


def _wait_stack(cfn: Any, stack: str, poll: float) -> dict[str, Any]:
    while True:
        current = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = current["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        time.sleep(poll)
    if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        return current
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    failed = [f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
              for e in events if e["ResourceStatus"].endswith("_FAILED")][:10]
    raise DeployError(f"stack {stack} ended {status}" + "".join(f"\n  {line}" for line in failed))


def _describe_change(change: dict[str, Any]) -> str:
    rc = change.get("ResourceChange", {})
    replacement = rc.get("Replacement")
    extra = " (replaced)" if replacement == "True" else ""
    return f"{rc.get('Action', '?'):6} {rc.get('LogicalResourceId', '?')} {rc.get('ResourceType', '')}{extra}"


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
