"""A config author's mistakes: each is refused with file, line, field path and what is valid.

Every case starts from a valid config and breaks one thing, as a person would.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from esteira.config import load_project
from esteira.errors import ConfigError

BASE = """\
project_name: demo
description: "Demo pipeline"
version: "1.0.0"
owners:
  tech_owner: "ml-team@rentcars.com"
  business_owner: "produto@rentcars.com"
schedule:
  enabled: true
  cron: "0 3 * * *"
  timeout_seconds: 3600
  retries: 2
runtime:
  python_version: "3.11"
  env_vars:
    ENV: "dev"
batch:
  enabled: true
  orchestrator: "step_functions"
  pipeline:
    steps:
      - id: "extract_features"
        name: "Extract Features"
        command: "python steps/extract.py"
        resources:
          cpu: 1.0
          memory_gb: 4
      - id: "score_model"
        name: "Score Model"
        command: "python steps/score.py"
        resources:
          cpu: 2.0
          memory_gb: 8
infra:
  compute:
    provider: "ec2"
    ec2_type: "t3.xlarge"
    min_quantity: 0
    max_quantity: 2
    spot: true
notifications:
  on_failure:
    - "oncall@rentcars.com"
"""

BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
"""


def sub(old: str, new: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        assert old in text, f"fixture out of date: {old!r} not in the base config"
        return text.replace(old, new, 1)

    return apply


def whole(text: str) -> Callable[[str], str]:
    return lambda _: text


# (case id, how to break the base config, field path in the message, words in the message, line)
CASES: list[tuple[str, Callable[[str], str], str, str, int | None]] = [
    ("version-float", sub('version: "1.0.0"', "version: 1.10"), "version", 'quote it to keep it as text: "1.10"', 3),
    ("duplicate-key", sub("  retries: 2\n", "  retries: 2\n  retries: 3\n"), "schedule.retries",
     "duplicate key 'retries' (first defined on line 11)", 12),
    ("alias-bomb", whole(BOMB), "e[0]", "an alias bomb?", 1),
    ("unknown-top-field", sub("schedule:\n", "schedul:\n"), "schedul", "did you mean 'schedule'", 7),
    ("unknown-step-field", sub('command: "python steps/score.py"', 'comand: "python steps/score.py"'),
     "batch.pipeline.steps[1].comand", "did you mean 'command'", 29),
    ("missing-project-name", sub("project_name: demo\n", ""), "project_name", "required field is missing", None),
    ("cron-four-fields", sub('cron: "0 3 * * *"', 'cron: "0 3 * *"'), "schedule.cron", "a Unix cron has 5", 9),
    ("cron-out-of-range", sub('cron: "0 3 * * *"', 'cron: "61 3 * * *"'), "schedule.cron",
     "not a valid cron expression", 9),
    ("cron-quartz-syntax", sub('cron: "0 3 * * *"', 'cron: "0 3 ? * MON#2"'), "schedule.cron",
     "not standard Unix cron", 9),
    ("cron-both-day-fields", sub('cron: "0 3 * * *"', 'cron: "0 3 1 * MON"'), "schedule.cron",
     "fires when EITHER matches", 9),
    ("bad-timezone", sub("  retries: 2\n", "  retries: 2\n  timezone: Mars/Olympus\n"), "schedule.timezone",
     "not an IANA time zone", 12),
    ("duplicate-step-id", sub('id: "score_model"', 'id: "extract_features"'), "batch.pipeline.steps[1].id",
     "duplicate step id 'extract_features'", 27),
    ("unknown-dependency", sub('        name: "Score Model"\n', '        name: "Score Model"\n        depends_on: [extrct]\n'),
     "batch.pipeline.steps[1].depends_on[0]", "unknown step 'extrct'; valid step ids: extract_features, score_model",
     29),
    ("cycle", sub('        name: "Extract Features"\n',
                  '        name: "Extract Features"\n        depends_on: [score_model]\n'),
     "batch.pipeline.steps[0].depends_on", "dependency cycle: extract_features -> score_model -> extract_features",
     23),
    ("self-dependency", sub('        name: "Score Model"\n', '        name: "Score Model"\n        depends_on: [score_model]\n'),
     "batch.pipeline.steps[1].depends_on[0]", "depends on itself", 29),
    ("step-id-with-dot", sub('id: "score_model"', 'id: "score.model"'), "batch.pipeline.steps[1].id",
     "Airflow task id", 27),
    ("step-id-too-long", sub('id: "score_model"', f'id: "{"s" * 71}"'), "batch.pipeline.steps[1].id",
     "1-70 letters", 27),
    ("cpu-zero", sub("cpu: 2.0", "cpu: 0"), "batch.pipeline.steps[1].resources.cpu", "greater than or equal to 0.125",
     31),
    ("cpu-below-ecs-minimum", sub("cpu: 2.0", "cpu: 0.1"), "batch.pipeline.steps[1].resources.cpu",
     "greater than or equal to 0.125", 31),
    ("memory-negative", sub("memory_gb: 8", "memory_gb: -8"), "batch.pipeline.steps[1].resources.memory_gb",
     "a container needs 6 MiB at least", 32),
    ("instance-type-unknown", sub('ec2_type: "t3.xlarge"', 'ec2_type: "t3.xlargee"'), "infra.compute.ec2_type",
     "'t3.xlargee' is not an EC2 instance type (did you mean t3.xlarge", 36),
    ("instance-type-arm64", sub('ec2_type: "t3.xlarge"', 'ec2_type: "m7g.xlarge"'), "infra.compute.ec2_type",
     "Graviton) type, but the cluster's AMI and the image esteira builds are x86_64", 36),
    ("task-more-cpu-than-instance", sub("cpu: 2.0", "cpu: 8"), "batch.pipeline.steps[1].resources",
     "cpu 8 is more than a t3.xlarge has (4 vCPU)", 30),
    ("task-more-memory-than-instance", sub("memory_gb: 8", "memory_gb: 16"), "batch.pipeline.steps[1].resources",
     "memory_gb 16 is more than ECS can give a task on a t3.xlarge", 30),
    ("cron-never-fires", sub('cron: "0 3 * * *"', 'cron: "0 3 31 4 *"'), "schedule.cron", "never fires", 9),
    ("timezone-alias", sub("  retries: 2\n", "  retries: 2\n  timezone: US/Eastern\n"), "schedule.timezone",
     "old alias of 'America/New_York'", 12),
    ("empty-argument", sub('"python steps/score.py"', '["python", "", "steps/score.py"]'),
     "batch.pipeline.steps[1].command", "argument 1 is empty", 29),
    ("nul-in-argument", sub('"python steps/score.py"', '["python", "steps/score.py\\0"]'),
     "batch.pipeline.steps[1].command", "NUL character", 29),
    ("nul-in-env-value", sub('    ENV: "dev"', '    ENV: "dev\\0"'), "runtime.env_vars.ENV", "NUL character", 15),
    ("bad-email", sub('tech_owner: "ml-team@rentcars.com"', 'tech_owner: "ml-team at rentcars"'),
     "owners.tech_owner", "email", 5),
    ("bad-env-name", sub('    ENV: "dev"', '    ENV: "dev"\n    1BAD: "x"'), "runtime.env_vars.1BAD",
     "not a valid environment variable name", 16),
    ("reserved-env-name", sub('    ENV: "dev"', '    ENV: "dev"\n    RUN_DATE: "2020-01-01"'),
     "runtime.env_vars.RUN_DATE", "set by esteira in every step", 16),
    ("secret-in-env", sub('    ENV: "dev"', '    ENV: "dev"\n    DB_PASSWORD: "hunter2"'),
     "runtime.env_vars.DB_PASSWORD", "looks like a secret", 16),
    ("norway-problem", sub('    ENV: "dev"', "    ENV: no"), "runtime.env_vars.ENV",
     'quote it to keep it as text: "no"', 15),
    ("uppercase-project", sub("project_name: demo", "project_name: Demo"), "project_name",
     "lower-case letters", 1),
    ("project-name-too-long", sub("project_name: demo", f"project_name: {'d' * 60}"), "project_name",
     "EventBridge schedule", 1),
    ("shell-in-command", sub('"python steps/score.py"', '"python steps/score.py && rm -rf /tmp/x"'),
     "batch.pipeline.steps[1].command", "commands run without a shell", 29),
    ("unbalanced-quote", sub('"python steps/score.py"', "'python \"steps/score.py'"),
     "batch.pipeline.steps[1].command", "cannot split the command", 29),
    ("catchup-without-start", sub("  retries: 2\n", "  retries: 2\n  catchup: true\n"), "schedule.catchup",
     "needs a start_date", 12),
    ("min-above-max", sub("min_quantity: 0", "min_quantity: 5"), "infra.compute.min_quantity",
     "greater than max_quantity (2)", 37),
    ("unknown-orchestrator", sub('orchestrator: "step_functions"', 'orchestrator: "argo"'), "batch.orchestrator",
     "'step_functions' or 'airflow'", 18),
    ("no-steps", lambda t: t[: t.index("      - id")].replace("steps:", "steps: []") + t[t.index("infra:"):],
     "batch.pipeline.steps", "at least 1 item", 20),
    ("yaml-syntax", sub('cron: "0 3 * * *"', 'cron: ["0 3 * * *"'), "(top level)", "invalid YAML", None),
    ("empty-file", whole(""), "(top level)", "file is empty", None),
    ("not-a-mapping", whole("- just\n- a list\n"), "(top level)", "must hold a mapping", 1),
    ("step-timeout-above-run", sub('        name: "Score Model"\n', '        name: "Score Model"\n        timeout_seconds: 7200\n'),
     "batch.pipeline.steps[1].timeout_seconds", "exceeds the whole run's schedule.timeout_seconds (3600)", 29),
    ("negative-retries", sub("  retries: 2", "  retries: -1"), "schedule.retries", "greater than or equal to 0", 11),
    ("bool-as-text", sub("  enabled: true\n  cron", '  enabled: "yes"\n  cron'), "schedule.enabled",
     "valid boolean", 8),
    ("fargate-with-ec2-fields", sub('provider: "ec2"', 'provider: "fargate"'), "infra.compute.ec2_type",
     "no meaning with provider fargate", 36),
    ("fargate-size", lambda t: sub("memory_gb: 4", "memory_gb: 1")(
        sub('provider: "ec2"\n    ec2_type: "t3.xlarge"\n    min_quantity: 0\n    max_quantity: 2', 'provider: "fargate"')(t)),
     "batch.pipeline.steps[0].resources", "memory_gb 1 is not valid with cpu 1 on Fargate; valid: 2 to 8 in steps of 1", 24),
    ("ec2-without-type", sub('    ec2_type: "t3.xlarge"\n', ""), "infra.compute.ec2_type", "required with provider ec2", 34),
    ("secret-not-a-ref", sub('    ENV: "dev"\n', '    ENV: "dev"\n  secrets:\n    DB_PASSWORD: "hunter2"\n'),
     "runtime.secrets.DB_PASSWORD", "write 'ssm:<parameter name>'", 17),
    ("secret-also-env", sub('    ENV: "dev"\n', '    ENV: "dev"\n  secrets:\n    ENV: "ssm:/demo/env"\n'),
     "runtime.secrets.ENV", "both a secret and a plain env_var", 17),
    ("log-retention", sub('    spot: true\n', '    spot: true\n  log_retention_days: 10\n'),
     "infra.log_retention_days", "Input should be 1, 3, 5, 7, 14, 30", 40),
    ("folder-mismatch", sub("project_name: demo", "project_name: other"), "project_name",
     "differs from its folder 'demo'", 1),
]


@pytest.mark.parametrize(("case", "breakit", "path", "words", "line"), CASES, ids=[c[0] for c in CASES])
def test_broken_config_is_refused_with_path_line_and_hint(
    write_project: Callable[[str, str], Path], case: str, breakit: Callable[[str], str],
    path: str, words: str, line: int | None,
) -> None:
    file = write_project("demo", breakit(BASE))
    with pytest.raises(ConfigError) as info:
        load_project(file)
    text = str(info.value)
    assert str(file) in text
    expected = f" {path}"
    matching = [ln for ln in text.splitlines() if expected in ln and words in ln]
    assert matching, f"no problem line names {expected!r} with {words!r}:\n{text}"
    if line is not None:
        assert f"{file}:{line}: " in matching[0], text


def test_the_base_config_of_the_table_is_valid(write_project: Callable[[str, str], Path]) -> None:
    project = load_project(write_project("demo", BASE))
    assert project.graph.topological_order() == ("extract_features", "score_model")


def test_every_problem_is_reported_at_once(write_project: Callable[[str, str], Path]) -> None:
    text = sub("cpu: 2.0", "cpu: 0")(sub('cron: "0 3 * * *"', 'cron: "0 3 * *"')(BASE))
    with pytest.raises(ConfigError) as info:
        load_project(write_project("demo", text))
    assert len(info.value.problems) == 2


def test_validate_command_reports_every_broken_project_without_traceback(
    write_project: Callable[[str, str], Path],
) -> None:
    for case, breakit, *_ in CASES[:12]:
        write_project(case, breakit(BASE).replace("project_name: demo", f"project_name: {case}"))
    good = write_project("good", BASE.replace("project_name: demo", "project_name: good"))
    result = subprocess.run([sys.executable, "-m", "esteira", "validate", "--projects-dir", str(good.parent.parent)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "ok  good: 2 steps" in result.stdout
    for case, *_ in CASES[:12]:
        assert f"{case}/config.yaml" in result.stderr, case
