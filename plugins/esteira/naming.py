"""Every AWS and Airflow name esteira derives, in one place, with the rule AWS enforces on it.

The config validator checks a project name against every rule here, so a name that would
break one resource is refused when the YAML is loaded, not half-way through a deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Step ids become Airflow task ids and Step Functions state names, which are capped at 80
# characters; the state machine names a step's helper states `<step>.<suffix>` (at most 10
# more characters, see esteira.asl), so step ids stop at 70. Dots are task-group separators
# in Airflow, so they are not allowed.
STEP_ID_MAX = 70
STEP_ID_RE = re.compile(rf"^[A-Za-z][A-Za-z0-9_-]{{0,{STEP_ID_MAX - 1}}}$")
PROJECT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOG_STREAM_PREFIX = "ecs"


@dataclass(frozen=True)
class NameRule:
    key: str
    resource: str
    template: str
    pattern: re.Pattern[str]
    max_len: int
    allowed: str

    def render(self, **values: str) -> str:
        return self.template.format(**values)


RULES: tuple[NameRule, ...] = (
    NameRule("cluster", "ECS cluster", "ml-cluster-{project}", re.compile(r"^[A-Za-z0-9_-]+$"), 255,
             "letters, digits, '-' and '_'"),
    NameRule("launch_template", "launch template", "lt-{project}", re.compile(r"^[A-Za-z0-9().\-/_]+$"), 128,
             "letters, digits and ().-/_"),
    NameRule("auto_scaling_group", "auto scaling group", "asg-{project}", re.compile(r"^[\x20-\x7e]+$"), 255,
             "printable ASCII"),
    NameRule("capacity_provider", "capacity provider", "cp-{project}", re.compile(r"^[A-Za-z0-9_-]+$"), 255,
             "letters, digits, '-' and '_'"),
    NameRule("task_definition_family", "task definition family", "{project}", re.compile(r"^[A-Za-z0-9_-]+$"), 255,
             "letters, digits, '-' and '_'"),
    NameRule("state_machine", "state machine", "{project}-workflow", re.compile(r"^[A-Za-z0-9_-]+$"), 80,
             "letters, digits, '-' and '_'"),
    NameRule("schedule", "EventBridge schedule", "sched-{project}", re.compile(r"^[0-9A-Za-z_.-]+$"), 64,
             "letters, digits, '.', '-' and '_'"),
    NameRule("log_group", "log group", "/ecs/{project}", re.compile(r"^[.\-_/#A-Za-z0-9]+$"), 512,
             "letters, digits and ._-/#"),
    # the S3 trigger's EventBridge rule and the SQS queue Airflow's AssetWatcher reads (esteira.s3_trigger)
    NameRule("trigger_rule", "EventBridge rule", "s3-{project}", re.compile(r"^[.\-_A-Za-z0-9]+$"), 64,
             "letters, digits, '.', '-' and '_'"),
    NameRule("trigger_queue", "SQS queue", "{project}-s3-events", re.compile(r"^[A-Za-z0-9_-]+$"), 80,
             "letters, digits, '-' and '_'"),
    NameRule("sns_topic", "SNS topic", "{project}-notifications", re.compile(r"^[A-Za-z0-9_-]+$"), 256,
             "letters, digits, '-' and '_'"),
    NameRule("image_tag", "ECR image tag", "{project}-{version}", re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"), 128,
             "letters, digits, '.', '-' and '_'"),
    NameRule("stack", "CloudFormation stack", "esteira-{project}", re.compile(r"^[A-Za-z][A-Za-z0-9-]*$"), 128,
             "letters, digits and '-' (no '_')"),
    NameRule("dag_id", "Airflow DAG id", "{project}", re.compile(r"^[A-Za-z0-9_.-]+$"), 250,
             "letters, digits, '.', '-' and '_'"),
    # the DAG's tags (esteira.airflow.dag_builder); Airflow refuses a tag over 100 characters
    NameRule("project_tag", "Airflow DAG tag", "project:{project}", re.compile(r"^.+$"), 100, "any text"),
    NameRule("version_tag", "Airflow DAG tag", "version:{version}", re.compile(r"^.+$"), 100, "any text"),
)


_BY_KEY = {rule.key: rule for rule in RULES}


def name_problems(project: str, version: str) -> list[tuple[str, str]]:
    """(field, why) for each derived name of this project AWS or Airflow would refuse."""
    out = []
    for rule in RULES:
        name = rule.render(project=project, version=version)
        field = "version" if "{version}" in rule.template else "project_name"
        if len(name) > rule.max_len:
            out.append((field, f"the {rule.resource} {name!r} is {len(name)} characters; "
                               f"at most {rule.max_len} are allowed"))
        elif not rule.pattern.match(name):
            out.append((field, f"the {rule.resource} {name!r} may only hold {rule.allowed}"))
    return out


def max_project_name_length() -> int:
    """The longest project name every derived resource name accepts (version not counted)."""
    return min(rule.max_len - len(rule.render(project="", version="")) for rule in RULES
               if "{version}" not in rule.template)


@dataclass(frozen=True)
class ProjectNames:
    """The resource names of one project; the only place a renderer gets a name from."""

    project: str
    version: str

    def _name(self, key: str) -> str:
        return _BY_KEY[key].render(project=self.project, version=self.version)

    @property
    def cluster(self) -> str:
        return self._name("cluster")

    @property
    def launch_template(self) -> str:
        return self._name("launch_template")

    @property
    def auto_scaling_group(self) -> str:
        return self._name("auto_scaling_group")

    @property
    def capacity_provider(self) -> str:
        return self._name("capacity_provider")

    @property
    def task_definition_family(self) -> str:
        return self.project

    @property
    def container_name(self) -> str:
        return self.project

    @property
    def state_machine(self) -> str:
        return self._name("state_machine")

    @property
    def schedule(self) -> str:
        return self._name("schedule")

    @property
    def log_group(self) -> str:
        return self._name("log_group")

    @property
    def log_stream_prefix(self) -> str:
        return LOG_STREAM_PREFIX

    @property
    def trigger_rule(self) -> str:
        return self._name("trigger_rule")

    @property
    def trigger_queue(self) -> str:
        return self._name("trigger_queue")

    @property
    def trigger_dag_id(self) -> str:
        """The Airflow DAG that turns the queue's events into runs of the project's DAG (no project name
        holds '__': '_' is refused, see the stack's name rule)."""
        return f"{self.project}__s3_trigger"

    def trigger_queue_url(self, region: str, account_id: str) -> str:
        return f"https://sqs.{region}.amazonaws.com/{account_id}/{self.trigger_queue}"

    @property
    def sns_topic(self) -> str:
        return self._name("sns_topic")

    @property
    def image_tag(self) -> str:
        return self._name("image_tag")

    @property
    def stack(self) -> str:
        return self._name("stack")

    @property
    def dag_id(self) -> str:
        return self.project

    @property
    def mlflow_experiment(self) -> str:
        return self.project

    def image_uri(self, ecr_repository: str) -> str:
        return f"{ecr_repository}:{self.image_tag}"

    def sns_topic_arn(self, region: str, account_id: str) -> str:
        return f"arn:aws:sns:{region}:{account_id}:{self.sns_topic}"

    def state_machine_arn(self, region: str, account_id: str) -> str:
        return f"arn:aws:states:{region}:{account_id}:stateMachine:{self.state_machine}"
