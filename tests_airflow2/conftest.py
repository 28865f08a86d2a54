"""Airflow 2.11 test session (MWAA's newest Airflow 2): a private Airflow home, our real dags/ folder.

Run with the Airflow 2 venv, which scripts/setup-airflow2.sh creates:
    .venv-airflow2/bin/python -m pytest tests_airflow2
The Airflow home and the project-folder fixtures are tests/session_fixtures.py, shared with the
Airflow 3 suite; it is imported first, before anything imports Airflow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # after this folder: its conftest wins

from session_fixtures import DAGS, PROJECTS, REPO, airflow_db, projects_dir, write_project

__all__ = ["DAGS", "PROJECTS", "REPO", "airflow_db", "projects_dir", "write_project"]


def pytest_configure(config: pytest.Config) -> None:
    """This suite means Airflow 2: say so at once when run with the wrong interpreter."""
    import airflow

    if not airflow.__version__.startswith("2."):
        raise pytest.UsageError(f"tests_airflow2 needs Airflow 2 (.venv-airflow2/bin/python, made by "
                                f"scripts/setup-airflow2.sh); {sys.executable} has Airflow {airflow.__version__}")
