"""`python -m asl_export`: the state machine is the Airflow DAG's graph, checked by two validators.

The ordering a state machine imposes is read back from the ASL by this test's own walker,
not by esteira's graph code, and compared with the Airflow DAG built from the same config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asl_fixtures import GRAPHS, SERIES_PARALLEL, config_text, task_parameters
from conftest import PROJECTS, REPO
from esteira.airflow.factory import build_all
from esteira.settings import Settings

NODE_BIN = REPO / "node_modules" / ".bin" / "asl-validator"


def export(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asl_export", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def all_projects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's projects plus the graph fixtures, in one projects folder."""
    root = tmp_path_factory.mktemp("asl") / "projects"
    shutil.copytree(PROJECTS, root)
    for name, deps in GRAPHS.items():
        (root / name).mkdir()
        (root / name / "config.yaml").write_text(config_text(name, deps))
    return root


@pytest.fixture(scope="module")
def exported(all_projects: Path) -> Iterator[Path]:
    out = all_projects.parent / "out"
    result = export("--all", "--projects-dir", str(all_projects), "--out", str(out))
    assert result.returncode == 0, result.stderr
    yield out / "dev"


def machines(exported: Path) -> dict[str, dict[str, Any]]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(exported.glob("*/state_machine.asl.json"))}


# --- an independent reading of the ASL ----------------------------------------------------

def _walk(states: dict[str, Any], start: str, before: frozenset[str], order: dict[str, frozenset[str]]) -> set[str]:
    """Follow Next from start; record for each ECS task the tasks finished before it starts."""
    done = set(before)
    name: str | None = start
    while name is not None:
        state = states[name]
        if state["Type"] == "Task" and state["Resource"].startswith("arn:aws:states:::ecs:runTask"):
            order[name] = frozenset(done)
            done.add(name)
        elif state["Type"] == "Parallel":
            finished: set[str] = set()
            for branch in state["Branches"]:
                finished |= _walk(branch["States"], branch["StartAt"], frozenset(done), order)
            done |= finished
        elif state["Type"] == "Choice":
            name = state["Default"]
            continue
        name = None if state.get("End") or state["Type"] in ("Succeed", "Fail") else state.get("Next")
    return done


def asl_order(definition: dict[str, Any]) -> dict[str, frozenset[str]]:
    order: dict[str, frozenset[str]] = {}
    _walk(definition["States"], definition["StartAt"], frozenset(), order)
    return order


def all_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state by name, Parallel branches included (names are unique machine-wide)."""
    found: dict[str, dict[str, Any]] = {}

    def visit(states: dict[str, Any]) -> None:
        for name, state in states.items():
            assert name not in found, f"state name {name} used twice"
            found[name] = state
            for branch in state.get("Branches", []):
                visit(branch["States"])

    visit(definition["States"])
    return found


def ecs_tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in all_states(definition).items()
            if state["Type"] == "Task" and "ecs:runTask" in state["Resource"]}


def camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def ancestors(dag: Any, task_id: str) -> set[str]:
    return {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=True)}


# --- the proofs ----------------------------------------------------------------------------

def test_both_validators_accept_every_exported_machine(exported: Path) -> None:
    files = sorted(str(p) for p in exported.glob("*/state_machine.asl.json"))
    assert len(files) == len(GRAPHS) + 2
    lint = subprocess.run([str(Path(sys.executable).parent / "statelint"), *files], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert NODE_BIN.exists(), "asl-validator missing: run make setup (npm ci)"
    args = [a for f in files for a in ("--json-path", f)]
    node = subprocess.run([str(NODE_BIN), *args], capture_output=True, text=True)
    assert node.returncode == 0, node.stdout + node.stderr


def test_state_machine_and_airflow_dag_agree_on_everything_a_step_is(
    all_projects: Path, exported: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESTEIRA_PROJECTS_DIR", str(all_projects))
    dags = build_all(Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(all_projects), "ESTEIRA_BACKEND": "ecs"}))
    for name, definition in machines(exported).items():
        dag = dags[name]
        tasks = ecs_tasks(definition)
        assert set(tasks) == set(dag.task_ids), name
        order = asl_order(definition)
        assert set(order) == set(dag.task_ids)
        for task_id in dag.task_ids:
            # every dependency of the config is respected ...
            assert ancestors(dag, task_id) <= order[task_id], (name, task_id)
            if name in SERIES_PARALLEL or name in ("recsys", "churn"):
                # ... and nothing is added for series-parallel graphs: same critical path
                assert order[task_id] == ancestors(dag, task_id), (name, task_id)
        for task_id, state in tasks.items():
            op = dag.get_task(task_id)
            params = camel(task_parameters(definition, state))
            assert params["cluster"] == op.cluster
            assert params["taskDefinition"] == op.task_definition
            assert params["capacityProviderStrategy"] == op.capacity_provider_strategy
            assert "launchType" not in params
            assert params["networkConfiguration"] == op.network_configuration
            assert params["propagateTags"] == op.propagate_tags
            assert {t["key"]: t["value"] for t in params["tags"]} == op.tags
            asl_over, af_over = params["overrides"], op.overrides
            assert asl_over["cpu"] == af_over["cpu"] and asl_over["memory"] == af_over["memory"]
            [asl_c], [af_c] = asl_over["containerOverrides"], af_over["containerOverrides"]
            for key in ("name", "command", "cpu", "memory"):
                assert asl_c[key] == af_c[key], (name, task_id, key)
            # the environment: same names, same values; run values read from the run's identity
            asl_env = {e["name"]: e.get("value", e.get("value.$")) for e in asl_c["environment"]}
            af_env = {e["name"]: e["value"] for e in af_c["environment"]}
            assert list(asl_env) == list(af_env)
            run_values = {"RUN_DATE": ("$.esteira.run_date", "{{ esteira_run_date(dag_run) }}"),
                          "RUN_ID": ("$.esteira.run_id", "{{ dag_run.run_id }}")}
            for key, value in af_env.items():
                assert (asl_env[key], value) == run_values.get(key, (value, value)), (name, key)
            # per ECS task on both (Airflow's execution_timeout guards the whole try around it)
            assert state["TimeoutSeconds"] == getattr(op, "task_timeout_seconds", op.execution_timeout.total_seconds())
            # the step's wrapper retries task + exit-code check together, as often as Airflow retries
            wrapper = all_states(definition)[f"{task_id}.run"]
            [branch] = wrapper["Branches"]
            assert wrapper["Type"] == "Parallel" and task_id in branch["States"]
            # infrastructure failures: retried inside the try, then never by the wrapper
            infra = op.infra_retries if hasattr(op, "infra_retries") else None
            if branch["StartAt"] != task_id:  # a budget: the try starts by counting from 0
                assert branch["StartAt"] == f"{task_id}.try"
                assert branch["States"][f"{task_id}.infra"]["Choices"][0]["NumericLessThan"] == (infra or 3)
            retries = wrapper.get("Retry", [{"MaxAttempts": 0}, {"MaxAttempts": 0,
                                                                "IntervalSeconds": op.retry_delay.total_seconds()}])
            assert retries[0] == {"ErrorEquals": ["esteira.InfrastructureFailure"], "MaxAttempts": 0} or not op.retries
            assert retries[1]["MaxAttempts"] == op.retries
            assert retries[1]["IntervalSeconds"] == op.retry_delay.total_seconds()
            assert "Retry" not in state
            assert wrapper["ResultPath"] is None  # results stay out of the 256 KiB state
        assert definition["TimeoutSeconds"] == dag.dagrun_timeout.total_seconds()


def test_non_series_parallel_graph_keeps_every_dependency_and_adds_the_least(exported: Path) -> None:
    order = asl_order(machines(exported)["not-series-parallel"])
    # a->c, b->c, b->d: one extra ordering (a before d) is the least any nesting can add
    assert order["c"] >= {"a", "b"} and order["d"] >= {"b"}
    ordered = {(before, step) for step, befores in order.items() for before in befores}
    assert ordered - {("a", "c"), ("b", "c"), ("b", "d")} == {("a", "d")}


def test_schedules_carry_cron_timezone_state_and_the_run_identity(exported: Path) -> None:
    [recsys] = json.loads((exported / "recsys" / "schedules.json").read_text())
    assert recsys["Name"] == "sched-recsys"
    assert recsys["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert recsys["ScheduleExpressionTimezone"] == "UTC"
    assert recsys["State"] == "DISABLED"  # dev: executions start by hand; only prd's schedules fire
    assert recsys["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert recsys["Target"]["Arn"] == "arn:aws:states:us-east-1:111111111111:stateMachine:recsys-workflow"
    assert recsys["Target"]["RoleArn"] == "arn:aws:iam::111111111111:role/esteira-scheduler"
    assert json.loads(recsys["Target"]["Input"]) == {
        "run_date": "<aws.scheduler.scheduled-time>", "run_id": "<aws.scheduler.execution-id>"}
    [churn] = json.loads((exported / "churn" / "schedules.json").read_text())
    assert churn["ScheduleExpression"] == "cron(30 4 ? * 2-6 *)"
    assert churn["ScheduleExpressionTimezone"] == "America/Sao_Paulo"


def test_schedule_requests_are_valid_create_schedule_calls(exported: Path) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("scheduler", region_name="us-east-1")
        for path in sorted(exported.glob("*/schedules.json")):
            for request in json.loads(path.read_text()):
                client.create_schedule(**request)  # botocore validates against the API's shapes
        names = {s["Name"] for s in client.list_schedules()["Schedules"]}
    assert {"sched-recsys", "sched-churn"} <= names


def test_export_is_deterministic_and_check_finds_drift(all_projects: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = export("recsys", "churn", "--projects-dir", str(all_projects), "--out", str(out), "--env", "prd")
    assert first.returncode == 0, first.stderr
    assert f"wrote {out}/prd/recsys/state_machine.asl.json" in first.stdout
    assert [s["State"] for s in json.loads((out / "prd" / "recsys" / "schedules.json").read_text())] == ["ENABLED"]
    snapshot = {p: p.read_bytes() for p in out.rglob("*.json")}
    assert len(snapshot) == 6  # state machine, schedules, stack for each
    assert export("recsys", "churn", "--projects-dir", str(all_projects), "--out", str(out), "--env", "prd").returncode == 0
    assert {p: p.read_bytes() for p in out.rglob("*.json")} == snapshot
    clean = export("recsys", "--projects-dir", str(all_projects), "--out", str(out), "--env", "prd", "--check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    target = out / "prd" / "recsys" / "state_machine.asl.json"
    target.write_text(target.read_text().replace('"TimeoutSeconds": 3600', '"TimeoutSeconds": 60', 1))
    drift = export("recsys", "--projects-dir", str(all_projects), "--out", str(out), "--env", "prd", "--check")
    assert drift.returncode == 1
    assert '-  "TimeoutSeconds": 60' in drift.stdout and '+  "TimeoutSeconds": 3600' in drift.stdout
    assert target.read_text().count('"TimeoutSeconds": 60') == 1  # --check writes nothing


def test_bad_usage_unknown_projects_and_bad_configs_exit_2_without_traceback(
    all_projects: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    nothing = export("--projects-dir", str(all_projects))
    assert nothing.returncode == 2 and "name one or more projects, or pass --all" in nothing.stderr
    unknown = export("recsis", "--projects-dir", str(all_projects), "--out", str(out))
    assert unknown.returncode == 2
    assert "unknown project(s): recsis; known projects" in unknown.stderr and "recsys" in unknown.stderr
    broken_dir = tmp_path / "projects"
    shutil.copytree(all_projects, broken_dir)
    cfg = broken_dir / "churn" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("depends_on: [train_logreg, train_gbm]", "depends_on: [train_lgbm]"))
    broken = export("--all", "--projects-dir", str(broken_dir), "--out", str(out))
    assert broken.returncode == 2
    assert "batch.pipeline.steps[3].depends_on[0]: unknown step 'train_lgbm'" in broken.stderr
    for result in (nothing, unknown, broken):
        assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing half-written


def test_asl_export_never_imports_airflow(all_projects: Path, tmp_path: Path) -> None:
    code = ("import sys, runpy; sys.argv = ['asl_export', 'recsys', '--projects-dir', sys.argv[1], '--out', sys.argv[2]];"
            "import asl_export.cli as c; rc = c.main(sys.argv[1:]);"
            "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')], 'airflow imported';"
            "sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(all_projects), str(tmp_path / "o")],
                            capture_output=True, text=True, env={**os.environ})
    assert result.returncode == 0, result.stderr


def test_aws_size_limits_are_refused_with_the_step_and_the_limit(tmp_path: Path) -> None:
    """ECS caps a RunTask's overrides at 8192 characters and Step Functions a definition at 1 MB:
    a config past either is refused at export (exit 2, nothing written), not by AWS mid-deploy."""
    import yaml

    root = tmp_path / "projects"
    root.mkdir()
    shutil.copy(PROJECTS / "environments.yaml", root / "environments.yaml")
    fat = yaml.safe_load(config_text("fat-env", {"a": [], "b": ["a"]}))
    fat["batch"]["pipeline"]["steps"][1]["env_vars"] = {f"APP_BLOB_{i}": "x" * 3000 for i in range(3)}
    # 200 steps, each inside ECS's limit, whose one command (a YAML alias: the file stays small)
    # adds up to more than 1 MB of ASL
    huge = yaml.safe_load(config_text("huge", {f"s{i}": None for i in range(200)}))
    command = " ".join(["python -m jobs", *(["--flag-" + "y" * 40] * 130)])
    for i, step in enumerate(huge["batch"]["pipeline"]["steps"]):
        step["command"] = "COMMAND_ANCHOR" if i == 0 else "COMMAND_ALIAS"
        step.update(retries=1, resources={"cpu": 1, "memory_gb": 2})
    (root / "fat-env").mkdir()
    (root / "fat-env" / "config.yaml").write_text(yaml.safe_dump(fat, sort_keys=False))
    (root / "huge").mkdir()
    (root / "huge" / "config.yaml").write_text(yaml.safe_dump(huge, sort_keys=False)
                                               .replace("COMMAND_ANCHOR", f"&cmd '{command}'")
                                               .replace("COMMAND_ALIAS", "*cmd"))

    out = tmp_path / "out"
    fat_run = export("fat-env", "--projects-dir", str(root), "--out", str(out))
    assert fat_run.returncode == 2, fat_run.stderr
    assert "batch.pipeline.steps[1]: the ECS overrides of this step (command + environment) take" in fat_run.stderr
    assert "ECS accepts at most 8192" in fat_run.stderr
    huge_run = export("huge", "--projects-dir", str(root), "--out", str(out))
    assert huge_run.returncode == 2, huge_run.stderr
    assert "Step Functions accepts at most 1048576" in huge_run.stderr
    for result in (fat_run, huge_run):
        assert "Traceback" not in result.stderr
    assert not out.exists()


def test_every_helper_state_name_fits_beside_the_longest_step_id() -> None:
    """ASL caps state names at 80 characters; step ids stop at 70 (esteira.naming)."""
    from esteira.asl import HELPER_SUFFIXES
    from esteira.naming import STEP_ID_MAX

    assert max(len(suffix) for suffix in HELPER_SUFFIXES) + STEP_ID_MAX <= 80
