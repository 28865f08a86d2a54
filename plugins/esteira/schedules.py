"""EventBridge Scheduler CreateSchedule requests that start the project's state machine.

The Unix cron becomes the AWS cron that fires on the same instants (`esteira.aws_cron`; a
cron with no exact equivalent is refused when the config is loaded). The input hands the
state machine the scheduled instant and the scheduler's execution id: RUN_DATE and RUN_ID.
A list, so that one project could own several schedules later without a format change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from esteira import asl
from esteira.aws_cron import to_aws_cron
from esteira.runspec import ProjectRunSpec

SCHEDULED_INPUT = json.dumps({
    asl.INPUT_RUN_DATE: "<aws.scheduler.scheduled-time>",
    asl.INPUT_RUN_ID: "<aws.scheduler.execution-id>",
}, separators=(",", ":"))


def render_schedules(spec: ProjectRunSpec) -> list[dict[str, Any]]:
    """CreateSchedule request bodies (PascalCase, as the Scheduler API and boto3 take them).

    The schedule is ENABLED only where environments.yaml says `schedules_enabled: true` (prd
    in the seed's flow), when the config's schedule is enabled and Step Functions owns it
    (`batch.orchestrator: step_functions`): dev gets the same schedule DISABLED (start
    executions by hand there), and with `orchestrator: airflow` it stays DISABLED so a
    pipeline never runs on both orchestrators at once.
    """
    aws = spec.target.aws
    if aws is None:
        raise ValueError("schedules need an AWS target (dev or prd), not the local backend")
    cfg = spec.project.config
    sched = cfg.schedule
    names = spec.project.names
    enabled = sched.enabled and cfg.batch.orchestrator == "step_functions" and aws.schedules_enabled
    request: dict[str, Any] = {
        "Name": names.schedule,
        "GroupName": "default",
        "Description": f"{cfg.project_name}: Unix cron '{sched.cron}' ({sched.timezone}), by esteira",
        "ScheduleExpression": to_aws_cron(sched.cron),
        "ScheduleExpressionTimezone": sched.timezone,
        "State": "ENABLED" if enabled else "DISABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": names.state_machine_arn(aws.region, aws.account_id),
            "RoleArn": aws.roles.scheduler,
            "Input": SCHEDULED_INPUT,
        },
    }
    if sched.start_date is not None:
        request["StartDate"] = start_instant(sched.start_date, sched.timezone)
    return [request]


def start_instant(day: Any, timezone: str) -> str:
    """Midnight of `start_date` in the schedule's zone, in UTC: the instant Airflow's DAG starts at.

    EventBridge Scheduler fires nothing before StartDate; a StartDate already past has no effect,
    and deploys drop it (esteira.deploy), since AWS refuses a StartDate far in the past.
    """
    start = datetime.combine(day, time(), ZoneInfo(timezone)).astimezone(UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")
