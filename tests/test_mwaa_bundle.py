"""`python -m esteira mwaa-bundle`: what MWAA deploys, tested in MWAA's layout and from the bundle alone.

MWAA syncs dags/ to $AIRFLOW_HOME/dags and unpacks plugins.zip into $AIRFLOW_HOME/plugins (on
sys.path). The DagBag test lays the bundle out that way in a temporary folder and parses it in a
fresh interpreter whose esteira comes from plugins.zip and whose projects come from the bundled
dags/ folder (ESTEIRA_PROJECTS_DIR unset), with AIRFLOW_ENV_NAME set as MWAA sets it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from config_oracle import CONFIGS, expected_edges
from conftest import PROJECTS, REPO
from esteira.__main__ import main

PACKAGE = REPO / "plugins" / "esteira"
CONSTRAINTS = '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-{}/constraints-3.11.txt"'
RUNTIME = {"apache-airflow-providers-amazon", "croniter", "email-validator", "pydantic", "pyyaml"}

# Run in a fresh interpreter with only the bundle: which esteira and projects it sees, which files
# Airflow would parse as DAG files, and the DagBag. Works with Airflow 2 and 3.
PROBE = r"""
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag
from airflow.utils.file import list_py_file_paths
import esteira
from esteira.settings import Settings

folder = sys.argv[1]
bag = DagBag(dag_folder=folder)  # examples: off in the environment
settings = Settings.from_environ()
print("PROBE:" + json.dumps({
    "esteira": esteira.__file__,
    "projects_dir": str(settings.projects_dir),
    "backend": settings.backend,
    "dag_files": list_py_file_paths(folder, safe_mode=False),
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {dag_id: {"tasks": [t.task_id for t in dag.tasks],
                      "edges": sorted([u, t.task_id] for t in dag.tasks for u in t.upstream_task_ids),
                      "operators": sorted({type(t).__name__ for t in dag.tasks}),
                      "tags": sorted(dag.tags), "doc_md": dag.doc_md}
             for dag_id, dag in bag.dags.items()},
}))
"""


def shipped(root: Path) -> list[Path]:
    """Files under root, relative, less caches and dotfiles: what the bundle should copy."""
    rels = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    return [rel for rel in rels if not rel.name.endswith(".pyc")
            and not any(part == "__pycache__" or part.startswith(".") for part in rel.parts)]


def build(out: Path, *args: str) -> int:
    return main(["mwaa-bundle", "--out", str(out), *args])


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESTEIRA_") and k != "PYTHONPATH"}
    return {**env, **extra}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "mwaa"
    assert build(out) == 0
    return out


@pytest.fixture(scope="module")
def mwaa_home(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle as MWAA lays it out: <home>/dags synced, plugins.zip unpacked into <home>/plugins."""
    home = tmp_path_factory.mktemp("mwaa-home")
    shutil.copytree(bundle / "dags", home / "dags")
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        archive.extractall(home / "plugins")
    return home


def test_the_bundle_has_the_dag_file_the_projects_the_ignore_file_plugins_and_requirements(bundle: Path) -> None:
    got = files(bundle)
    assert set(got) == {
        "dags/esteira_dags.py", "dags/.airflowignore", "plugins.zip", "requirements.txt",
        *(f"dags/esteira_projects/{rel.as_posix()}" for rel in shipped(PROJECTS)),
    }
    assert got["dags/esteira_dags.py"] == (REPO / "dags" / "esteira_dags.py").read_bytes()
    for name in CONFIGS:
        assert got[f"dags/esteira_projects/{name}/config.yaml"] == (PROJECTS / name / "config.yaml").read_bytes()
    ignored = [line for line in got["dags/.airflowignore"].decode().splitlines() if not line.startswith("#")]
    assert ignored == ["esteira_projects"]


def test_plugins_zip_holds_the_package_at_its_root_deterministically(bundle: Path) -> None:
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in infos} == {0o100644}
        assert "esteira/" in archive.read(".airflowignore").decode().splitlines()
        package = {f"esteira/{rel.as_posix()}" for rel in shipped(PACKAGE)}
        assert set(names) == {".airflowignore", *package}
        for name in package:
            assert archive.read(name) == (REPO / "plugins" / name).read_bytes()


@pytest.mark.parametrize("layout", ["zipimport", "unzipped"])
def test_plugins_zip_imports_the_dag_factory_on_its_own(bundle: Path, mwaa_home: Path, layout: str) -> None:
    path = bundle / "plugins.zip" if layout == "zipimport" else mwaa_home / "plugins"
    code = "import esteira, esteira.airflow.factory; print(esteira.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean_env(PYTHONPATH=str(path)), cwd=mwaa_home, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith(str(path / "esteira")), proc.stdout


def test_requirements_have_the_constraints_line_and_esteiras_run_time_packages(bundle: Path) -> None:
    lines = [line for line in (bundle / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines[0] == CONSTRAINTS.format("2.11.0")
    names = {line.split("#")[0].strip() for line in lines[1:]}
    assert names == RUNTIME
    # versions come from the constraints file: a different == pin would make pip refuse the file
    assert not any(ch in name for name in names for ch in "=<>~!")


def test_airflow_and_python_versions_name_the_constraints_file(tmp_path: Path) -> None:
    assert build(tmp_path / "b", "--airflow-version", "2.10.3", "--python-version", "3.12") == 0
    assert CONSTRAINTS.format("2.10.3").replace("3.11.txt", "3.12.txt") in (tmp_path / "b" / "requirements.txt").read_text()


def test_the_bundle_is_byte_identical_on_re_runs_and_leaves_nothing_stale(bundle: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert build(again) == 0
    assert files(again) == files(bundle)
    stale = again / "dags" / "esteira_projects" / "gone" / "config.yaml"
    stale.parent.mkdir()
    stale.write_text("a project deleted since the last bundle")
    assert build(again) == 0  # into the same folder
    assert files(again) == files(bundle)


def test_the_bundled_dags_folder_loads_with_dagbag_from_the_bundle_alone(mwaa_home: Path) -> None:
    # A project's own Python files are not DAG files: .airflowignore keeps the processor out.
    decoy = mwaa_home / "dags" / "esteira_projects" / next(iter(CONFIGS)) / "steps" / "not_a_dag.py"
    decoy.parent.mkdir(exist_ok=True)
    decoy.write_text("# mentions airflow and DAG, as Airflow's safe mode looks for\nraise SystemExit('parsed')\n")
    dags = mwaa_home / "dags"
    plugins = mwaa_home / "plugins"
    env = clean_env(PYTHONPATH=str(plugins), AIRFLOW__CORE__DAGS_FOLDER=str(dags),
                    AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins), AIRFLOW_ENV_NAME="esteira-test")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(dags)], capture_output=True, text=True, env=env,
                          cwd=mwaa_home, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("PROBE:")]
    got = json.loads(line.removeprefix("PROBE:"))
    assert got["esteira"].startswith(str(plugins / "esteira"))  # the package from plugins.zip
    assert got["projects_dir"] == str(dags / "esteira_projects")  # found without ESTEIRA_PROJECTS_DIR
    assert got["backend"] == "ecs"  # MWAA's default
    assert got["dag_files"] == [str(dags / "esteira_dags.py")]
    assert got["import_errors"] == {}
    assert set(got["dags"]) == set(CONFIGS)
    for name, cfg in CONFIGS.items():
        dag = got["dags"][name]
        assert "esteira:config-error" not in dag["tags"], dag["doc_md"]
        assert dag["tasks"] == [s["id"] for s in cfg["batch"]["pipeline"]["steps"]]
        assert dag["edges"] == sorted([a, b] for a, b in expected_edges(cfg))
        assert dag["operators"] == ["EcsRunTaskOperator"]
        assert str(dags / "esteira_projects" / name / "config.yaml") in dag["doc_md"]


def test_help_says_what_the_bundle_holds_and_how_to_deploy_it() -> None:
    proc = subprocess.run([sys.executable, "-m", "esteira", "mwaa-bundle", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    for text in ("plugins.zip", "requirements.txt", "esteira_projects", ".airflowignore", "--airflow-version",
                 "build/mwaa", "aws s3 sync", "update-environment"):
        assert text in proc.stdout


@pytest.fixture
def broken_projects(tmp_path: Path) -> Iterator[Path]:
    dest = tmp_path / "projects"
    shutil.copytree(PROJECTS, dest)
    config = dest / next(iter(CONFIGS)) / "config.yaml"
    config.write_text(config.read_text().replace("cron: ", "cron: x", 1))
    yield dest


@pytest.mark.parametrize(("args", "message"), [
    (["--projects-dir", "/nonexistent/projects"], "no such folder"),
    (["--airflow-version", "2.11"], "is not a release like 2.11.0"),
    (["--airflow-version", "2.9.3"], "need Airflow 2.10 or later"),
    (["--python-version", "three"], "is not a Python version"),
])
def test_bad_usage_exits_2_with_a_clear_message_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str,
) -> None:
    assert build(tmp_path / "out", *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_invalid_project_exits_2_names_the_problem_and_writes_nothing(
    broken_projects: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert build(tmp_path / "out", "--projects-dir", str(broken_projects)) == 2
    err = capsys.readouterr().err
    assert "schedule.cron" in err and "nothing written" in err
    assert not (tmp_path / "out").exists()


def test_an_output_folder_holding_other_files_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert build(out) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert files(out) == {"notes.txt": b"mine"}


def test_an_output_folder_inside_the_projects_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    projects = tmp_path / "good"
    shutil.copytree(PROJECTS, projects)
    assert build(projects / "bundle", "--projects-dir", str(projects)) == 2
    assert "inside" in capsys.readouterr().err
    assert not (projects / "bundle").exists()
