"""Projects spread over several esteira DAG files load under Airflow 2.11 as under 3.3: each file
parsed alone (as the DAG processor does) builds its share, together every project exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.models.dagbag import DagBag

from conftest import PROJECTS
from esteira import dag_files


@pytest.fixture
def projects(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "projects"
    root.mkdir()
    (root / "environments.yaml").write_bytes((PROJECTS / "environments.yaml").read_bytes())
    churn = (PROJECTS / "churn" / "config.yaml").read_text()
    for i in range(6):
        (root / f"churn-{i}").mkdir()
        config = churn.replace("project_name: churn", f"project_name: churn-{i}")
        (root / f"churn-{i}" / "config.yaml").write_text(config)
    saved = dict(os.environ)
    os.environ.update(ESTEIRA_PROJECTS_DIR=str(root), ESTEIRA_CACHE_DIR=str(tmp_path / "cache"))
    yield root
    os.environ.clear()
    os.environ.update(saved)


def test_each_file_builds_its_share_and_together_every_project_once(projects: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    done = subprocess.run([sys.executable, "-m", "esteira", "dag-files", "--dags-folder", str(folder),
                           "--projects-dir", str(projects), "--per-file", "2"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == dag_files.file_names(3)
    shares = []
    for file in sorted(folder.iterdir()):
        bag = DagBag(dag_folder=str(file), include_examples=False)
        assert bag.import_errors == {}
        shares.append(set(bag.dags))
    every = [dag_id for share in shares for dag_id in share]
    assert sorted(every) == [f"churn-{i}" for i in range(6)]
    assert sum(1 for share in shares if share) > 1
