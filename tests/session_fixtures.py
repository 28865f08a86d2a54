"""What both test suites share (tests/ under Airflow 3, tests_airflow2/ under Airflow 2.11).

Importing this module gives the session a private Airflow home (sqlite) on the real dags/ and
plugins/ folders; Airflow reads AIRFLOW_HOME when first imported, so each conftest imports this
before anything imports Airflow. The fixtures make project folders whose local home (MLflow,
data) is inside the test's tmp_path, never the repo's .esteira/.
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

_HOME = Path(tempfile.mkdtemp(prefix="esteira-airflow-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")  # as the Makefile and MWAA set it
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# what a user's shell (or MWAA, or the compose stack) may set must not leak into the tests
for var in ("ESTEIRA_PROJECTS_DIR", "ESTEIRA_ENVIRONMENTS_FILE", "ESTEIRA_BACKEND", "ESTEIRA_ENV",
            "ESTEIRA_LOCAL_MLFLOW_TRACKING_URI", "AIRFLOW_ENV_NAME"):
    os.environ.pop(var, None)


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
