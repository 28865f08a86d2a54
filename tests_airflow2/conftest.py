"""Airflow 2.11 test session (MWAA's newest Airflow 2): a private Airflow home, our real dags/ folder.

Run with the Airflow 2 venv, which scripts/setup-airflow2.sh creates:
    .venv-airflow2/bin/python -m pytest tests_airflow2
Airflow reads AIRFLOW_HOME when first imported, so it is set here, before anything imports it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECTS = REPO / "projects"
DAGS = REPO / "dags"

_HOME = Path(tempfile.mkdtemp(prefix="esteira-airflow2-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")  # as the Makefile and MWAA set it
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
for var in ("ESTEIRA_PROJECTS_DIR", "ESTEIRA_ENVIRONMENTS_FILE", "ESTEIRA_BACKEND", "ESTEIRA_ENV", "AIRFLOW_ENV_NAME"):
    os.environ.pop(var, None)


def pytest_configure(config: pytest.Config) -> None:
    """This suite means Airflow 2: say so at once when run with the wrong interpreter."""
    import airflow

    if not airflow.__version__.startswith("2."):
        raise pytest.UsageError(f"tests_airflow2 needs Airflow 2 (.venv-airflow2/bin/python, made by "
                                f"scripts/setup-airflow2.sh); {sys.executable} has Airflow {airflow.__version__}")


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """An initialised Airflow metadata DB (sqlite), migrated once per session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True, env=os.environ.copy())
    yield _HOME


@pytest.fixture
def projects_dir(tmp_path: Path) -> Path:
    """A copy of the repo's projects whose local home (MLflow, data) is inside tmp_path."""
    dest = tmp_path / "projects"
    shutil.copytree(PROJECTS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    env_file = dest / "environments.yaml"
    env_file.write_text(env_file.read_text().replace("home: ../.esteira", "home: ../home"))
    return dest


@pytest.fixture
def write_project(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write projects/<folder>/config.yaml (+ the repo's environments.yaml) under tmp_path."""
    root = tmp_path / "projects"
    root.mkdir(exist_ok=True)
    shutil.copy(PROJECTS / "environments.yaml", root / "environments.yaml")

    def write(folder: str, text: str) -> Path:
        path = root / folder / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write
