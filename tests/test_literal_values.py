"""Literal means literal: a value in config.yaml reaches the program byte for byte on all three
paths — a local process and an ECS task started by Airflow, an ECS task started by Step Functions.

Airflow renders operators' template fields with Jinja; Step Functions passes Parameters on as
they are. Only esteira's own values (RUN_DATE, RUN_ID) may be filled in at run time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from asl_fixtures import task_parameters
from conftest import PROJECTS
from esteira.airflow.factory import build_all
from esteira.asl import render_state_machine
from esteira.config import load_project
from esteira.environments import load_environments
from esteira.plan import Target, build_plan
from esteira.settings import Settings

# What a shell, a template engine or a JSON/YAML writer could each get wrong.
NASTY = {
    "JINJA_EXPR": "{{ ds }}",
    "JINJA_BLOCK": "{% if true %}yes{% endif %}",
    "JINJA_COMMENT": "a{# hidden #}b",
    "JINJA_RAW_END": "{% endraw %}{{ 1 }}",
    "HALF_OPEN": "{{ not closed",
    "SHELL_VAR": "${HOME} and $HOME and $(id)",
    "CFN_SUB": "${AWS::Region}",
    "QUOTES": "it's \"quoted\" 'twice'",
    "BACKSLASHES": "C:\\temp\\new \\n \\' \\\\",
    "UNICODE": "ação 🎉 \u202eRTL\u202c e\u0301 中文",
    "CRLF": "line1\r\nline2\rline3\n",
    "TABS": "\tindented\t",
    "PERCENT": "100% {%",
    "JSON": '{"a": [1, {"b": "{{c}}"}]}',
}
ARGS = ["{{ dag_run.run_id }}", "{% raw %}", "it's", "back\\slash", "ação 🎉", "costs $5, ${1}", "tab\there"]
LOGICAL = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
DUMP = """\
import json, os, sys
out = os.path.join(os.environ["DATA_ROOT"], "dump.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, open(out, "w"))
"""


@pytest.fixture
def literal_project(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    root.mkdir()
    env_file = root / "environments.yaml"
    env_file.write_text((PROJECTS / "environments.yaml").read_text().replace("home: ../.esteira", "home: ../home"))
    config = yaml.safe_load((PROJECTS / "recsys" / "config.yaml").read_text())
    config["project_name"] = "literal"
    config["runtime"]["env_vars"] = dict(NASTY)
    step = config["batch"]["pipeline"]["steps"][0]
    step["command"] = ["python", "dump.py", *ARGS]
    config["batch"]["pipeline"]["steps"] = [step]
    (root / "literal").mkdir()
    (root / "literal" / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    (root / "literal" / "dump.py").write_text(DUMP)
    return root


def _airflow_context(run_id: str) -> dict[str, Any]:
    dag_run = SimpleNamespace(logical_date=LOGICAL, run_after=LOGICAL, run_id=run_id)
    return {"dag_run": dag_run, "run_id": run_id, "ds": "2026-11-20", "logical_date": LOGICAL}


def _dags(projects: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> dict[str, Any]:
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("ESTEIRA_BACKEND", backend)
    return build_all(Settings.from_environ())


def test_the_ecs_task_airflow_renders_equals_the_asl_task_field_by_field(
    literal_project: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dag = _dags(literal_project, monkeypatch, "ecs")["literal"]
    task = dag.tasks[0]
    task.render_template_fields(_airflow_context("manual__r1"), jinja_env=dag.get_template_env())
    rendered = task.overrides["containerOverrides"][0]

    project = load_project(literal_project / "literal" / "config.yaml")
    target = Target.aws_env(load_environments(literal_project / "environments.yaml"), "dev")
    asl = render_state_machine(build_plan(project, target))
    branch = asl["States"][f"{task.task_id}.run"]["Branches"][0]
    sent = task_parameters(asl, branch["States"][task.task_id])["Overrides"]["ContainerOverrides"][0]

    assert rendered["command"] == sent["Command"] == ["python", "dump.py", *ARGS]
    airflow_env = {e["name"]: e["value"] for e in rendered["environment"]}
    asl_env = {e["Name"]: e.get("Value", e.get("Value.$")) for e in sent["Environment"]}
    for name, value in NASTY.items():
        assert airflow_env[name] == asl_env[name] == value, name
    assert airflow_env["RUN_DATE"] == "2026-11-20T03:00:00Z" and asl_env["RUN_DATE"] == "$.esteira.run_date"
    assert airflow_env["RUN_ID"] == "manual__r1" and asl_env["RUN_ID"] == "$.esteira.run_id"
    assert set(airflow_env) == set(asl_env)


@pytest.mark.usefixtures("airflow_db")
def test_a_local_step_receives_every_value_byte_for_byte(
    literal_project: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dag = _dags(literal_project, monkeypatch, "local")["literal"]
    run = dag.test(logical_date=LOGICAL)
    assert run.state == "success"
    dump = json.loads((literal_project.parent / "home" / "data" / "dump.json").read_text())
    assert dump["argv"] == ARGS
    for name, value in NASTY.items():
        assert dump["env"][name] == value, name
    assert dump["env"]["RUN_DATE"] == "2026-11-20T03:00:00Z"
    assert dump["env"]["RUN_ID"] == run.run_id


def test_plain_values_are_left_readable_in_airflow(literal_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only values Jinja would change are escaped: the UI shows ordinary values as written."""
    dag = _dags(literal_project, monkeypatch, "ecs")["literal"]
    env = {e["name"]: e["value"] for e in dag.tasks[0].overrides["containerOverrides"][0]["environment"]}
    assert env["QUOTES"] == NASTY["QUOTES"] and env["UNICODE"] == NASTY["UNICODE"]
    assert env["JINJA_EXPR"] != NASTY["JINJA_EXPR"]  # escaped until rendered


