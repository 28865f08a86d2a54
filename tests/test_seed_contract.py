"""The seed's config.yaml, copied verbatim from the RentCars MLOps document, is our contract.

Every later addition to the schema must keep it valid and keep its meaning: two steps in
sequence on the project's spot capacity, the same cron, timeout and retries in both outputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import PROJECTS
from esteira.config import load_project

SEED = Path(__file__).parent / "fixtures" / "seed"


def test_the_seed_config_is_valid_unchanged_and_means_what_it_says() -> None:
    project = load_project(SEED / "recsys" / "config.yaml")
    cfg = project.config
    assert [s.id for s in cfg.batch.pipeline.steps] == ["extract_features", "score_model"]
    assert project.graph.edges == {("extract_features", "score_model")}  # omitted depends_on: in list order
    assert cfg.batch.pipeline.steps[0].command == ("python", "steps/extract_features.py")
    assert (cfg.schedule.cron, cfg.schedule.timezone, cfg.schedule.timeout_seconds) == ("0 3 * * *", "UTC", 3600)
    assert project.retries(cfg.batch.pipeline.steps[1]) == 2
    assert cfg.infra.compute.spot and cfg.infra.compute.ec2_type == "t3.xlarge"


def test_the_seed_config_exports_to_step_functions(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    (projects / "recsys").mkdir(parents=True)
    (projects / "recsys" / "config.yaml").write_bytes((SEED / "recsys" / "config.yaml").read_bytes())
    (projects / "environments.yaml").write_bytes((PROJECTS / "environments.yaml").read_bytes())
    result = subprocess.run([sys.executable, "-m", "asl_export", "recsys", "--projects-dir", str(projects),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    machine = json.loads((tmp_path / "out" / "dev" / "recsys" / "state_machine.asl.json").read_text())
    assert machine["TimeoutSeconds"] == 3600
    assert machine["States"]["extract_features.run"]["Next"] == "score_model.run"
    # the seed's retries: 2 are the application's; infrastructure failures are retried inside the try
    [infra, application] = machine["States"]["score_model.run"]["Retry"]
    assert infra == {"ErrorEquals": ["esteira.InfrastructureFailure"], "MaxAttempts": 0}
    assert application["ErrorEquals"] == ["States.ALL"] and application["MaxAttempts"] == 2
    branch = machine["States"]["score_model.run"]["Branches"][0]
    assert branch["StartAt"] == "score_model.try" and branch["States"]["score_model.try"]["Next"] == "score_model"
