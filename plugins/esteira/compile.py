"""Compile one project for every target, checking every target's rules: the one path that
`validate`, the export and the DAG factory share.

"validate passes" must mean that Airflow, Step Functions, EventBridge Scheduler and
CloudFormation all accept what esteira renders. So `validate` does not stop at the config model:
it renders what the export renders, for local, dev and prd, and checks the rules AWS applies
only at deploy or run time (definition and template sizes, schedule expression length). The
export calls the same function for its one environment; nothing it writes was not checked here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from esteira.asl import render_state_machine, to_json
from esteira.cloudformation import SCHEDULE_ROLE, SCHEDULE_TARGET, render_stack
from esteira.config import Project
from esteira.environments import ENV_NAMES, Environments
from esteira.errors import ConfigError, Problem
from esteira.output_tree import SCHEDULES_FILE, STACK_FILE, STATE_MACHINE_FILE
from esteira.plan import Plan, Target, build_plan
from esteira.schedules import render_schedules

MAX_TEMPLATE_BYTES = 1_000_000  # CloudFormation's limit for a template uploaded to S3 (TemplateURL)
MAX_INLINE_TEMPLATE_BYTES = 51_200  # inline TemplateBody; larger ones are deployed through S3
MAX_SCHEDULE_EXPRESSION = 256  # EventBridge Scheduler's ScheduleExpression length
MAX_STACK_RESOURCES = 500  # CloudFormation's resources per template
MAX_ROLE_INLINE_POLICY = 10_240  # IAM: characters of a role's inline policies, whitespace not counted


@dataclass(frozen=True)
class AwsOutputs:
    """Everything the export writes and deploys for one project in one AWS environment."""

    plan: Plan
    state_machine: dict[str, Any]
    schedules: list[dict[str, Any]]
    stack: dict[str, Any]

    def files(self) -> dict[str, str]:
        """{file name: text}, deterministic: the same config always gives the same bytes."""
        return {
            STATE_MACHINE_FILE: to_json(self.state_machine),
            SCHEDULES_FILE: json.dumps(self.schedules, indent=2, ensure_ascii=False) + "\n",
            STACK_FILE: json.dumps(self.stack, indent=2, ensure_ascii=False) + "\n",
        }


def template_body(stack: dict[str, Any]) -> str:
    """The template as deploys send it (compact, sorted): what CloudFormation's limits count."""
    return json.dumps(stack, separators=(",", ":"), sort_keys=True)


def compile_aws(project: Project, target: Target) -> AwsOutputs:
    """Render a project for an AWS environment; ConfigError for anything AWS would refuse."""
    plan = build_plan(project, target)
    state_machine = render_state_machine(plan)
    schedules = render_schedules(plan)
    stack = render_stack(plan, state_machine, render_schedules(plan, target_arn=SCHEDULE_TARGET,
                                                                 role_arn=SCHEDULE_ROLE))
    problems: list[Problem] = []
    for schedule in schedules:
        expression = schedule["ScheduleExpression"]
        if len(expression) > MAX_SCHEDULE_EXPRESSION:
            path: tuple[str | int, ...] = ("schedule", "cron")
            problems.append(Problem(
                f"EventBridge needs {len(expression)} characters to write this cron ({expression[:60]}...); "
                f"it accepts at most {MAX_SCHEDULE_EXPRESSION}: use ranges or steps (1-5, */10) instead of "
                "long lists", path, project.line_for(path)))
    resources = stack["Resources"]
    if len(resources) > MAX_STACK_RESOURCES:
        subscriptions = sum(1 for name in resources if name.startswith("NotificationSubscription"))
        path = ("notifications",)
        problems.append(Problem(
            f"the stack would hold {len(resources)} resources ({subscriptions} of them one e-mail subscription per "
            f"notification address); CloudFormation allows {MAX_STACK_RESOURCES}: notify a mailing list "
            "instead of each person", path, project.line_for(path)))
    for name, resource in resources.items():
        policies = resource.get("Properties", {}).get("Policies") if resource["Type"] == "AWS::IAM::Role" else None
        size = len(json.dumps(policies, separators=(",", ":"))) if policies else 0
        if size > MAX_ROLE_INLINE_POLICY:
            path = ("runtime", "secrets")
            problems.append(Problem(
                f"the {name}'s inline policy would take about {size} characters; IAM allows "
                f"{MAX_ROLE_INLINE_POLICY} a role: group the secrets under fewer names (one Secrets Manager "
                "secret can hold many values as JSON)", path, project.line_for(path)))
    size = len(template_body(stack).encode())
    if size > MAX_TEMPLATE_BYTES:
        path = ("batch", "pipeline", "steps")
        problems.append(Problem(
            f"the CloudFormation stack of {target.env} would be {size} bytes; CloudFormation accepts at most "
            f"{MAX_TEMPLATE_BYTES} (even through S3): use fewer steps or shorter env_vars and commands",
            path, project.line_for(path)))
    if problems:
        raise ConfigError(project.source, problems)
    return AwsOutputs(plan, state_machine, schedules, stack)


def check_project(project: Project, environments: Environments) -> None:
    """Everything `validate` promises for one project: each target compiles; ConfigError if not."""
    problems: list[Problem] = []
    for target in (Target.local(environments), *(Target.aws_env(environments, env) for env in ENV_NAMES)):
        try:
            if target.aws is None:
                build_plan(project, target)
            else:
                compile_aws(project, target)
        except ConfigError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
    if problems:
        raise ConfigError(project.source, problems)
