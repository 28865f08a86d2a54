"""Airflow 2.11's own `airflow dags backfill` (MWAA's CLI) takes a Step-Functions-owned DAG: the
DAG schedules nothing, yet a backfill plans the instants `esteira backfill` starts on AWS, across
New York's spring-forward (02:30 does not exist on 8 March)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from conftest import DAGS, PROJECTS, REPO
from esteira.backfill import plan_backfill

AIRFLOW = Path(sys.executable).parent / "airflow"
CRON, ZONE = "30 1,2 * * *", "America/New_York"


def test_the_airflow_2_cli_backfills_a_dag_that_schedules_nothing(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS, projects, ignore=shutil.ignore_patterns("__pycache__"))
    config = projects / "recsys" / "config.yaml"
    config.write_text(config.read_text().replace('cron: "0 3 * * *"', f'cron: "{CRON}"')
                      .replace("  retries: 2", f"  retries: 2\n  timezone: {ZONE}", 1))
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "ESTEIRA_BACKEND": "ecs", "ESTEIRA_ENV": "prd", "ESTEIRA_PROJECTS_DIR": str(projects)}
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    migrated = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    done = subprocess.run([str(AIRFLOW), "dags", "backfill", "recsys", "-s", "2026-03-06", "-e", "2026-03-10",
                           "--dry-run"], env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "Dry run of DAG recsys" in out, out[-3000:]
    runs = plan_backfill(CRON, ZONE, datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))
    assert len(runs) == 7  # two a day, but 02:30 is skipped on 8 March
    # the dry run renders each task of each planned run once
    assert out.count("Rendering template for task_definition") == len(runs) * 4, out[-3000:]
