"""EventBridge Scheduler CreateSchedule requests that start the project's state machine.

The Unix cron becomes the AWS cron that fires on the same instants (`esteira.aws_cron`; a
cron with no exact equivalent is refused when the config is loaded). The input hands the
state machine the scheduled instant and the scheduler's execution id: RUN_DATE and RUN_ID.
A list, so that one project could own several schedules later without a format change.
"""

from __future__ import annotations

import json
from typing import Any

from esteira.plan import INPUT_RUN_DATE, INPUT_RUN_ID, Plan

SCHEDULED_INPUT = json.dumps({
    INPUT_RUN_DATE: "<aws.scheduler.scheduled-time>",
    INPUT_RUN_ID: "<aws.scheduler.execution-id>",
}, separators=(",", ":"))


def render_schedules(plan: Plan, *, target_arn: Any = None, role_arn: Any = None) -> list[dict[str, Any]]:
    """CreateSchedule request bodies (PascalCase, as the Scheduler API and boto3 take them).

    Whether the schedule is ENABLED is the Plan's decision (esteira.plan.SchedulePlan.aws_enabled):
    only where environments.yaml says `schedules_enabled: true` (prd in the seed's flow), when the
    config's schedule is enabled and Step Functions owns it. A StartDate already past has no
    effect, and deploys drop it (esteira.deploy), since AWS refuses one far in the past.

    `target_arn`/`role_arn` default to the state machine's ARN and environments.yaml's scheduler
    role (schedules.json, for a schedule created by hand); the stack passes references to its own.
    """
    aws = plan.aws
    if aws is None:
        raise ValueError("schedules need an AWS target (dev or prd), not the local backend")
    sched = plan.schedule
    names = plan.names
    request: dict[str, Any] = {
        "Name": names.schedule,
        "GroupName": "default",
        "Description": f"{plan.project}: Unix cron '{sched.cron}' ({sched.timezone}), by esteira",
        "ScheduleExpression": sched.aws_expression,
        "ScheduleExpressionTimezone": sched.timezone,
        "State": "ENABLED" if sched.aws_enabled else "DISABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": target_arn if target_arn is not None else names.state_machine_arn(aws.region, aws.account_id),
            "RoleArn": role_arn if role_arn is not None else aws.roles.scheduler,
            "Input": SCHEDULED_INPUT,
        },
    }
    if sched.start is not None:
        request["StartDate"] = sched.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [request]
