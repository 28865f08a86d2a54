"""Built for spot, on Step Functions: the exported state machine, run in moto's interpreter with an
ECS agent that stops each attempt as tests/failure_scripts.py says (spot interruption, failed start,
host gone, exit code). An infrastructure failure is retried against `infra_retries` with backoff and
never spends an application retry; an application failure spends `retries` and leaves the
infrastructure budget alone; an exhausted infrastructure budget fails the step at once, saying so.
tests/test_ecs_infra_retries.py drives Airflow through the same scripts to the same attempts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml
from failure_scripts import SCRIPTS, Script, expected_failure
from sfn_harness import Execution, run_execution

from asl_fixtures import config_text
from conftest import PROJECTS
from esteira.config import load_project
from esteira.ecs_failures import INFRA_ERROR, INFRASTRUCTURE, TIMEOUT
from esteira.environments import load_environments
from esteira.notifications import failure_record, log_stream_url
from esteira.plan import Plan, Target, build_plan


def one_step_plan(tmp_path: Path, script: Script, timeout_seconds: int | None = None) -> Plan:
    doc = yaml.safe_load(config_text("spot", {"train": None}))
    doc["schedule"] |= {"retries": script.retries, "retry_delay_seconds": 1, "infra_retries": script.infra_retries,
                        "infra_retry_delay_seconds": 1}
    if timeout_seconds is not None:
        doc["batch"]["pipeline"]["steps"][0]["timeout_seconds"] = timeout_seconds
    doc["notifications"] = {"on_success": [], "on_failure": ["oncall@rentcars.com"]}
    (tmp_path / "spot").mkdir()
    (tmp_path / "spot" / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    target = Target.aws_env(load_environments(PROJECTS / "environments.yaml"), "dev")
    return build_plan(load_project(tmp_path / "spot" / "config.yaml"), target)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_the_state_machine_spends_each_budget_only_on_its_own_failures(tmp_path: Path, script: Script) -> None:
    plan = one_step_plan(tmp_path, script)
    result = run_execution(plan, Execution(stops={"train": script.attempts}))
    runs = result.runs_of("train")
    assert [run.stop for run in runs] == list(script.attempts), result.failures()  # no more, no fewer
    assert result.status == ("SUCCEEDED" if script.succeeds else "FAILED"), result.failures()
    history = json.dumps(result.history, default=str)
    if script.failure == INFRASTRUCTURE:
        assert INFRA_ERROR in history
    else:  # no infrastructure failure was ever raised: the budget was not touched
        assert INFRA_ERROR not in history
    if script.succeeds:
        assert [n.message["status"] for n in result.notifications] == []  # on_success lists nobody
        return
    # the failure notification says which step failed, why, with what ECS said and where its logs are
    [notification] = result.notifications
    placement = plan.placement
    assert placement is not None
    log = log_stream_url(placement.region, placement.log_group,
                         placement.task_log_prefix, runs[-1].task_arn)
    assert notification.message["failures"] == [expected_failure(script, "train", log)]


def test_infrastructure_retries_back_off_exponentially(tmp_path: Path) -> None:
    """1 s, then 2 s: infra_retry_delay_seconds doubled each time, as the Airflow operator waits."""
    script = next(s for s in SCRIPTS if s.name == "infra-past-budget")
    result = run_execution(one_step_plan(tmp_path, script), Execution(stops={"train": script.attempts}))
    runs = result.runs_of("train")
    gaps = [later.started - (earlier.stopped or 0) for earlier, later in itertools.pairwise(runs)]
    assert len(gaps) == 2 and 1.0 <= gaps[0] < 2.0 <= gaps[1] < 3.5, gaps


def test_a_timed_out_step_is_notified_as_a_timeout(tmp_path: Path) -> None:
    """The task outlives the step's timeout_seconds: States.Timeout, caught as esteira.StepTimeout
    (retried on `retries`, never on the infrastructure budget), and the notification's record is the
    one Airflow sends for its own timeout (test_ecs_infra_retries.py)."""
    script = next(s for s in SCRIPTS if s.name == "app-failure")  # retries 1: both tries time out
    doc_plan = one_step_plan(tmp_path, script, timeout_seconds=1)
    result = run_execution(doc_plan, Execution(hold={"train": 4.0}))
    assert result.status == "FAILED", result.failures()
    assert len(result.runs_of("train")) == 1 + script.retries
    history = json.dumps(result.history, default=str)
    assert "esteira.StepTimeout" in history and INFRA_ERROR not in history
    [notification] = result.notifications
    assert notification.message["failures"] == [failure_record("train", TIMEOUT)]
