"""The exported state machine really runs: moto's Step Functions interpreter, tests/sfn_harness.py as ECS.

Every expectation is derived from the config (its graph, retries, notifications), not from the
ASL, so these tests judge the state machine rather than restate it. Where moto differs from
AWS, sfn_harness makes it behave like AWS; the product's ASL runs unchanged.
"""

from __future__ import annotations

import functools
import itertools
import shutil
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import yaml
from sfn_harness import Execution, ExecutionResult, run_execution

from asl_fixtures import GRAPHS, config_text
from conftest import PROJECTS
from esteira import notifications
from esteira.config import Project, load_project
from esteira.environments import load_environments
from esteira.graph import steps_in_order, structure
from esteira.plan import Plan, Target, build_plan

REPO_PROJECTS = ("recsys", "churn")
GRAPH_FIXTURES = ("diamond", "nested")
RUN_ONCE_CLEAN = (*REPO_PROJECTS, *GRAPH_FIXTURES)
ENV = "dev"
RETRY_DELAY_SECONDS = 1  # the configs' delay is minutes; the machine waits it for real
# nested is a -> (b -> c | d) -> e -> (f | g) -> h: d keeps running until c has started, which only
# a machine that orders c after b alone (and not after d) lets happen
SLOW_BRANCH = {"nested": {"d": {"c"}}}


def _fast(text: str) -> str:
    """The same config with retries 1 s apart, so a run with retries takes seconds."""
    doc = yaml.safe_load(text)
    doc["schedule"]["retry_delay_seconds"] = RETRY_DELAY_SECONDS
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    """Run specs (dev) of the repo's projects and of the graph fixtures, as the exporter builds them."""
    root = tmp_path_factory.mktemp("sfn") / "projects"
    for name in REPO_PROJECTS:
        shutil.copytree(PROJECTS / name, root / name)
        (root / name / "config.yaml").write_text(_fast((PROJECTS / name / "config.yaml").read_text()))
    for name in (*GRAPH_FIXTURES, "independent"):
        (root / name).mkdir(parents=True)
        (root / name / "config.yaml").write_text(_fast(config_text(name, GRAPHS[name])))
    target = Target.aws_env(load_environments(PROJECTS / "environments.yaml"), ENV)
    return {name: build_plan(load_project(root / name / "config.yaml"), target)
            for name in (*RUN_ONCE_CLEAN, "independent")}


@pytest.fixture(scope="module")
def clean_runs(specs: dict[str, Plan]) -> dict[str, ExecutionResult]:
    """One run of every project in which every container exits 0, started by hand (no input).

    The steps of a fan-out each keep running until all of them have started: if the machine ran
    them one after the other, the first would stall and the overlap test would see it.
    """
    runs = {}
    for name in RUN_ONCE_CLEAN:
        spec = specs[name]
        waits = {s: set(group) - {s} for group in fan_outs(project_of(spec)) for s in group}
        for step, others in SLOW_BRANCH.get(name, {}).items():
            waits[step] = waits.get(step, set()) | others
        runs[name] = run_execution(spec, Execution(hold_until_started=waits))
    return runs


# --- what the config says ------------------------------------------------------------------

def descendants(project: Project, step: str) -> set[str]:
    found: set[str] = set()
    todo = [step]
    while todo:
        for down in project.graph.downstream(todo.pop()):
            if down not in found:
                found.add(down)
                todo.append(down)
    return found


def independent(project: Project, a: str, b: str) -> bool:
    return a != b and a not in descendants(project, b) and b not in descendants(project, a)


def project_of(plan: Plan) -> Project:
    """The loaded config behind a Plan, for the test's own expectations (graph, failing step)."""
    return _load(plan.source)


@functools.cache
def _load(source: Path) -> Project:
    return load_project(source)


def fan_outs(project: Project) -> list[set[str]]:
    """Groups of 2+ steps that wait for exactly the same steps: nothing orders them."""
    groups: dict[frozenset[str], set[str]] = {}
    for step in project.graph.nodes:
        groups.setdefault(frozenset(project.graph.upstream(step)), set()).add(step)
    return [g for g in groups.values() if len(g) > 1]


def failing_step(project: Project) -> str:
    """A step with something downstream, preferably beside a parallel branch, with the most retries."""
    nodes = project.graph.nodes
    candidates = [s for s in nodes if project.graph.downstream(s)]
    beside = [s for s in candidates if any(independent(project, s, o) for o in nodes)]
    pool = beside or candidates
    return max(pool, key=lambda s: (project.retries(project.steps[s]), -nodes.index(s)))


def explain(result: ExecutionResult) -> str:
    return f"status {result.status}; failures: {result.failures()}"


def expected_message(spec: Plan, status: str, run_date: str, run_id: str,
                     failures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"project": spec.project, "env": ENV, "status": status, "run_date": run_date,
                               "run_id": run_id}
    return message if failures is None else message | {"failures": failures}


def failure(spec: Plan, step: str, exit_code: int, task_arn: str) -> dict[str, Any]:
    """The record of a step whose container exited non-zero (moto's ECS sets no stop code)."""
    placement = spec.placement
    assert placement is not None
    log = notifications.log_stream_url(placement.region, placement.log_group,
                                       placement.task_log_prefix, task_arn)
    return notifications.failure_record(step, "application", exit_code=exit_code,
                                        stopped_reason="Essential container in task exited", log=log)


# --- (1) order, and every step runs its own container ----------------------------------------

@pytest.mark.parametrize("name", RUN_ONCE_CLEAN)
def test_steps_start_in_dependency_order(name: str, specs: dict[str, Plan],
                                         clean_runs: dict[str, ExecutionResult]) -> None:
    project, result = project_of(specs[name]), clean_runs[name]
    assert result.status == "SUCCEEDED", explain(result)
    assert sorted(r.step for r in result.runs) == sorted(project.graph.nodes), "every step runs exactly once"
    for up, down in project.graph.edges:
        assert result.first_start(down) > result.last_stop(up), f"{down} started before {up} finished"


@pytest.mark.parametrize("name", RUN_ONCE_CLEAN)
def test_each_task_runs_its_steps_command_on_the_projects_capacity_provider(
        name: str, specs: dict[str, Plan], clean_runs: dict[str, ExecutionResult]) -> None:
    spec, result = specs[name], clean_runs[name]
    assert spec.placement is not None
    for run in result.runs:
        assert run.command == list(spec.step(run.step).command)
        assert run.environment["ENV"] == ENV
    for request in result.run_task_requests:  # as the ASL asked, before the harness's FARGATE swap
        assert "launchType" not in request
        assert [s["capacityProvider"] for s in request["capacityProviderStrategy"]] == [spec.placement.capacity_provider]


# --- (2) parallel branches overlap; a slow branch holds back only what depends on it ---------

@pytest.mark.parametrize("name", ["churn", *GRAPH_FIXTURES])
def test_parallel_branches_overlap(name: str, specs: dict[str, Plan],
                                   clean_runs: dict[str, ExecutionResult]) -> None:
    project, result = project_of(specs[name]), clean_runs[name]
    groups = fan_outs(project)
    assert groups, f"{name} has no fan-out any more: choose another project for this test"
    for group in groups:
        latest_start = max(result.first_start(s) for s in group)
        earliest_stop = min(result.last_stop(s) for s in group)
        assert latest_start < earliest_stop, f"{sorted(group)} were never RUNNING at the same time"


def test_a_slow_branch_holds_back_only_its_dependents(specs: dict[str, Plan],
                                                       clean_runs: dict[str, ExecutionResult]) -> None:
    """No ordering the config does not have: c (after b) starts while d (beside b -> c) still runs."""
    project, result = project_of(specs["nested"]), clean_runs["nested"]
    for slow, others in SLOW_BRANCH["nested"].items():
        for other in others:
            assert independent(project, slow, other), "the fixture changed: pick independent steps"
            assert result.first_start(other) < result.last_stop(slow), f"{other} waited for {slow}"


# --- (3) failure: retries, then the failure notification, and nothing downstream -------------

@pytest.mark.parametrize(("name", "sync_fails_on_exit_code"), [
    ("churn", True),
    ("diamond", True),
    # moto's own .sync never fails on an exit code: the machine must still see it
    ("diamond", False),
])
def test_a_failing_step_is_retried_then_notified_and_nothing_downstream_runs(
        name: str, sync_fails_on_exit_code: bool, specs: dict[str, Plan]) -> None:
    spec = specs[name]
    project = project_of(spec)
    step = failing_step(project)
    result = run_execution(spec, Execution(exit_codes={step: 3}, sync_fails_on_exit_code=sync_fails_on_exit_code))

    assert result.status == "FAILED", explain(result)
    attempts = result.runs_of(step)
    assert len(attempts) == spec.step(step).retries + 1
    for before, after in itertools.pairwise(attempts):
        assert before.stopped is not None
        assert after.started - before.stopped >= spec.step(step).retry_delay_seconds
    assert not descendants(project, step) & result.steps_run, "a step downstream of the failure ran"

    run_date, run_id = attempts[0].environment["RUN_DATE"], attempts[0].environment["RUN_ID"]
    assert run_id == result.name
    if project.config.notifications.on_failure:
        assert [(n.subject, n.message) for n in result.notifications] == [
            (notifications.subject(project.name, ENV, notifications.FAILED),
             expected_message(spec, notifications.FAILED, run_date, run_id,
                              [failure(spec, step, 3, attempts[-1].task_arn)]))]
    else:
        assert result.notifications == []


def test_a_failure_does_not_cancel_the_steps_independent_of_it(specs: dict[str, Plan]) -> None:
    """independent: a -> b beside x -> y. a fails while x still runs: Airflow finishes x, then runs y."""
    spec = specs["independent"]
    project = project_of(spec)
    step = failing_step(project)
    others = {s for s in project.graph.nodes if independent(project, step, s)}
    assert others, "the fixture changed: it needs steps independent of the failing one"
    # the first of them outlive the failure's retries (their hold ends early if the run ends first)
    long = {s: 6.0 for s in others if not set(project.graph.upstream(s)) & others}
    result = run_execution(spec, Execution(exit_codes={step: 1}, hold=long))

    assert result.status == "FAILED", explain(result)
    assert not descendants(project, step) & result.steps_run
    assert others <= result.steps_run, f"never started: {sorted(others - result.steps_run)}"


def test_the_failure_notification_lists_every_failed_step_in_structure_order(specs: dict[str, Plan]) -> None:
    """independent: a -> b beside x -> y. a and y both fail, one in each branch: the message lists
    both, in the order the pipeline's structure walks them (the order Airflow's callback uses too)."""
    spec = specs["independent"]
    result = run_execution(spec, Execution(exit_codes={"a": 4, "y": 5}))
    assert result.status == "FAILED", explain(result)
    last = {step: result.runs_of(step)[-1].task_arn for step in ("a", "y")}
    order = [step for step in steps_in_order(structure(spec.graph)) if step in last]
    assert order == ["a", "y"], "the fixture changed"
    [notification] = result.notifications
    assert notification.message["failures"] == [failure(spec, "a", 4, last["a"]), failure(spec, "y", 5, last["y"])]
    assert "b" not in result.steps_run


def test_a_step_that_fails_once_is_retried_and_the_run_succeeds(specs: dict[str, Plan]) -> None:
    """Also the scheduled case: RUN_DATE/RUN_ID come from the input EventBridge Scheduler sends."""
    spec = specs["recsys"]
    project = project_of(spec)
    step = failing_step(project)
    assert spec.step(step).retries >= 1, f"recsys {step} has no retries any more: pick a step that has"
    scheduled = {"run_date": "2026-11-24T03:00:00Z", "run_id": "sched-recsys-7f1c2d"}
    result = run_execution(spec, Execution(exit_codes={step: [1, 0]}, execution_input=scheduled,
                                           name="run-from-the-scheduler"))

    assert result.status == "SUCCEEDED", explain(result)
    assert [r.exit_code for r in result.runs_of(step)] == [1, 0]
    for down in descendants(project, step):
        assert result.first_start(down) > result.last_stop(step)
    for run in result.runs:
        assert (run.environment["RUN_DATE"], run.environment["RUN_ID"]) == (scheduled["run_date"], scheduled["run_id"])
    if project.config.notifications.on_success:
        assert [n.message for n in result.notifications] == [
            expected_message(spec, notifications.SUCCEEDED, scheduled["run_date"], scheduled["run_id"])]


# --- (4) success notification; (5) the run's identity when started by hand -------------------

@pytest.mark.parametrize("name", RUN_ONCE_CLEAN)
def test_a_successful_run_publishes_the_success_message_when_configured(
        name: str, specs: dict[str, Plan], clean_runs: dict[str, ExecutionResult]) -> None:
    spec, result = specs[name], clean_runs[name]
    assert result.status == "SUCCEEDED", explain(result)
    run = result.runs[0]
    if spec.notifications.on_success:
        assert [(n.subject, n.message) for n in result.notifications] == [
            (notifications.subject(spec.project, ENV, notifications.SUCCEEDED),
             expected_message(spec, notifications.SUCCEEDED, run.environment["RUN_DATE"], run.environment["RUN_ID"]))]
    else:
        assert result.notifications == []


@pytest.mark.parametrize("name", RUN_ONCE_CLEAN)
def test_run_identity_comes_from_the_execution_when_started_by_hand(
        name: str, clean_runs: dict[str, ExecutionResult]) -> None:
    result = clean_runs[name]
    started = result.start_date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    identities = {(r.environment["RUN_DATE"], r.environment["RUN_ID"]) for r in result.runs}
    assert identities == {(started, result.name)}

