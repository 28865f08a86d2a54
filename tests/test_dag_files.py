"""Projects spread over several esteira DAG files, as Airflow's processor parses them: one file at a time.

Every file is identical and builds the projects that hash to its position; together they build
every project exactly once, broken ones included, and adding a project changes one file's DAGs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from test_bad_input import BASE

from conftest import DAGS, PROJECTS, REPO
from esteira import dag_files, mwaa
from esteira.airflow.factory import ERROR_TAG


def _project(root: Path, name: str, text: str | None = None) -> None:
    (root / name).mkdir()
    (root / name / "config.yaml").write_text(text or BASE.replace("project_name: demo", f"project_name: {name}"))


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    root.mkdir()
    (root / "environments.yaml").write_bytes((PROJECTS / "environments.yaml").read_bytes())
    for i in range(9):
        _project(root, f"proj-{i}")
    _project(root, "broken", BASE.replace("project_name: demo", "project_name: broken").replace("cpu: 1.0", "cpu: lots"))
    return root


@pytest.fixture
def env(projects: Path, tmp_path: Path) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(ESTEIRA_PROJECTS_DIR=str(projects), ESTEIRA_CACHE_DIR=str(tmp_path / "cache"))
    yield
    os.environ.clear()
    os.environ.update(saved)


def _dag_files(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "esteira", "dag-files", *args],
                          capture_output=True, text=True, timeout=120)


def _per_file(folder: Path) -> dict[str, set[str]]:
    """{DAG file: its DAG ids}, each file parsed alone as the DAG processor does."""
    out = {}
    for file in sorted(folder.glob("*.py")):
        bag = DagBag(dag_folder=str(file))
        assert bag.import_errors == {}
        out[file.name] = set(bag.dags)
    return out


def test_the_files_build_every_project_exactly_once_and_a_new_project_changes_one_file(
        projects: Path, tmp_path: Path, env: None) -> None:
    folder = tmp_path / "dags"
    done = _dag_files("--dags-folder", str(folder), "--projects-dir", str(projects), "--per-file", "3")
    assert done.returncode == 0, done.stderr
    assert "4 esteira DAG file(s) for 10 project(s)" in done.stdout
    assert sorted(p.name for p in folder.iterdir()) == dag_files.file_names(4)
    before = _per_file(folder)
    every = [dag_id for ids in before.values() for dag_id in ids]
    assert sorted(every) == sorted({*(f"proj-{i}" for i in range(9)), "broken"})  # once each
    assert sum(1 for ids in before.values() if ids) > 1  # the work is spread
    whole = DagBag(dag_folder=str(folder))
    assert whole.import_errors == {} and set(whole.dags) == set(every)
    assert ERROR_TAG in whole.dags["broken"].tags and "cpu" in whole.dags["broken"].doc_md

    _project(projects, "newcomer")
    after = _per_file(folder)
    changed = {name for name in before if before[name] != after[name]}
    home = dag_files.file_names(4)[dag_files.shard_of("newcomer", 4)]
    assert changed == {home} and after[home] == before[home] | {"newcomer"}


def test_dag_files_removes_what_fewer_projects_do_not_need_and_check_says_what_differs(
        projects: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    assert _dag_files("--dags-folder", str(folder), "--projects-dir", str(projects), "--per-file", "2").returncode == 0
    assert len(list(folder.glob("esteira_dags*.py"))) == 5
    (folder / "my_own_dag.py").write_text("# a user's file: never touched\n")
    done = _dag_files("--dags-folder", str(folder), "--projects-dir", str(projects))
    assert done.returncode == 0 and "1 esteira DAG file(s) for 10 project(s)" in done.stdout
    assert "0 written, 4 removed" in done.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["esteira_dags.py", "my_own_dag.py"]
    assert _dag_files("--dags-folder", str(folder), "--projects-dir", str(projects), "--check").returncode == 0
    (folder / "esteira_dags_007.py").write_text(dag_files.DAG_FILE_TEXT)
    (folder / "esteira_dags.py").write_text("# edited\n")
    check = _dag_files("--dags-folder", str(folder), "--projects-dir", str(projects), "--check")
    assert check.returncode == 1
    assert "esteira_dags_007.py is one file too many" in check.stderr
    assert "esteira_dags.py is not esteira's DAG file text" in check.stderr
    bad = _dag_files("--dags-folder", str(folder), "--per-file", "0")
    assert bad.returncode == 2 and "--per-file must be at least 1" in bad.stderr and "Traceback" not in bad.stderr


def test_the_repos_dag_folder_is_what_dag_files_writes() -> None:
    assert (DAGS / dag_files.DAG_FILE).read_text() == dag_files.DAG_FILE_TEXT
    done = _dag_files("--dags-folder", str(DAGS), "--projects-dir", str(PROJECTS), "--check")
    assert done.returncode == 0, done.stderr


def test_a_dag_file_under_another_name_builds_every_project(projects: Path, tmp_path: Path, env: None) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "platform_dags.py").write_text(dag_files.DAG_FILE_TEXT)
    assert len(DagBag(dag_folder=str(folder)).dags) == 10


def test_the_mwaa_bundle_ships_as_many_dag_files_as_the_projects_need(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    root.mkdir()
    (root / "environments.yaml").write_bytes((PROJECTS / "environments.yaml").read_bytes())
    for i in range(2 * dag_files.PROJECTS_PER_FILE + 1):
        (root / f"p{i:04d}").mkdir()
        (root / f"p{i:04d}" / "config.yaml").write_text("project_name: x\n")
    files = mwaa.render_bundle(root, package_dir=REPO / "plugins" / "esteira")
    shipped = sorted(name for name in files if dag_files.is_dag_file(name.removeprefix("dags/")))
    assert shipped == [f"dags/{name}" for name in dag_files.file_names(3)]
    assert {files[name] for name in shipped} == {dag_files.DAG_FILE_TEXT.encode()}


def test_a_folder_that_cannot_hold_the_files_exits_3_without_traceback(projects: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "dags"
    not_a_folder.write_text("a file\n")
    done = _dag_files("--dags-folder", str(not_a_folder), "--projects-dir", str(projects))
    assert done.returncode == 3 and str(not_a_folder) in done.stderr and "Traceback" not in done.stderr
    taken = tmp_path / "taken"
    (taken / "esteira_dags_001.py").mkdir(parents=True)  # a folder where a DAG file must go
    done = _dag_files("--dags-folder", str(taken), "--projects-dir", str(projects), "--per-file", "5")
    assert done.returncode == 3 and "esteira_dags_001.py" in done.stderr and "Traceback" not in done.stderr


def test_only_regular_files_count_as_dag_files(tmp_path: Path) -> None:
    (tmp_path / "esteira_dags_001.py").mkdir()
    (tmp_path / "esteira_dags.py").write_text(dag_files.DAG_FILE_TEXT)
    assert dag_files.position(tmp_path / "esteira_dags.py") == (0, 1)
