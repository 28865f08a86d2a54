"""esteira as a Python package: what the wheel holds, that it runs installed (not from the checkout),
and that the locks the environments install from are the resolution of today's inputs.

The installed-wheel tests build the wheel and a fresh virtualenv offline (tests/packaging_helpers.py
says how and why that is honest); the lock tests read files only. ~15 s in all.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from packaging_helpers import PLUGIN_REPORT, REPO, build_wheel, clean_env, make_venv, wheel_metadata


def _lock_script() -> ModuleType:
    """scripts/lock.py (scripts/ is no package): the locks, their inputs and the inputs' digest."""
    spec = importlib.util.spec_from_file_location("esteira_lock_script", REPO / "scripts" / "lock.py")
    assert spec and spec.loader
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _lock_script()

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = next(node.value.value for node in ast.parse((REPO / "plugins/esteira/__init__.py").read_text()).body
               if isinstance(node, ast.Assign) and node.targets[0].id == "__version__")  # type: ignore[attr-defined]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line of a requirements-like file."""
    return {canonicalize_name(name): version for name, version in PIN.findall(path.read_text())}


# --- the wheel ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and only the core's declared dependencies: no Airflow."""
    return make_venv(tmp_path_factory.mktemp("venv") / "core", wheel)


def test_wheel_holds_the_packages_the_plugin_and_the_data(wheel: Path) -> None:
    names, fields = wheel_metadata(wheel)
    top = {name.split("/")[0] for name in names if not name.startswith("esteira-")}
    assert top == {"esteira", "asl_export", "ml_jobs", "esteira_plugin.py"}
    package = {n.removeprefix("esteira/") for n in names if n.startswith("esteira/") and "__pycache__" not in n}
    sources = {p.relative_to(REPO / "plugins/esteira").as_posix() for p in (REPO / "plugins/esteira").rglob("*")
               if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts}
    assert package == sources  # every module and data file of the checkout, nothing else
    assert {"data/config.schema.json", "data/ec2_instance_types.json"} <= package
    assert "asl_export/__main__.py" in names
    assert fields["Version"] == VERSION  # one source: esteira.__version__
    requires = [Requirement(line) for line in fields.get_all("Requires-Dist") or []]
    core = {canonicalize_name(r.name) for r in requires if r.marker is None}
    assert core == {"pydantic", "email-validator", "pyyaml", "croniter", "tzdata"}  # no Airflow, no boto3
    assert set(fields.get_all("Provides-Extra") or []) == set(PYPROJECT["project"]["optional-dependencies"])


def test_wheel_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        text = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("entry_points.txt"))
    assert "[console_scripts]\nesteira = esteira.__main__:main" in text
    assert "[airflow.plugins]\nesteira = esteira_plugin:entry_point_plugin" in text


def _run(args: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                          timeout=120)


def test_installed_cli_runs_from_the_install_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    bin_dir = venv.parent
    work = tmp_path / "work"
    shutil.copytree(REPO / "projects", work / "projects", ignore=shutil.ignore_patterns("__pycache__"))
    where = _run([venv, "-c", "import json, esteira, asl_export, esteira.settings as s; print(json.dumps("
                  "[esteira.__file__, asl_export.__file__, str(s.Settings.from_environ().projects_dir)]))"], work)
    assert where.returncode == 0, where.stderr
    esteira_file, asl_file, projects = json.loads(where.stdout)
    root = venv.parent.parent
    for path in (esteira_file, asl_file):
        assert Path(path).is_relative_to(root) and not Path(path).is_relative_to(REPO), path
    assert projects == str(work / "projects")  # installed, the default is the projects/ of where it runs
    assert _run([venv, "-c", "import airflow"], work).returncode != 0  # the core runs without Airflow

    version = _run([bin_dir / "esteira", "--version"], work)
    assert (version.returncode, version.stdout.strip()) == (0, f"esteira {VERSION}")
    usage = _run([bin_dir / "esteira", "--help"], work)
    assert usage.returncode == 0 and "validate" in usage.stdout, usage.stderr
    for args in (["validate"], ["validate", "--projects-dir", REPO / "projects"], ["schema", "--check"]):
        done = _run([bin_dir / "esteira", *args], tmp_path if "--projects-dir" in args else work)
        assert done.returncode == 0, (args, done.stdout, done.stderr)

    out = tmp_path / "asl"
    export = _run([venv, "-m", "asl_export", "recsys", "--projects-dir", REPO / "projects", "--out", out], tmp_path)
    assert export.returncode == 0, export.stderr
    assert (out / "dev" / "recsys" / "state_machine.asl.json").is_file()


def test_installed_mwaa_bundle_says_it_needs_a_checkout(venv: Path, tmp_path: Path) -> None:
    """The bundle builds esteira's wheel from a checkout (its pyproject.toml), which an install has not."""
    done = _run([venv.parent / "esteira", "mwaa-bundle", "--projects-dir", REPO / "projects", "--out",
                 tmp_path / "bundle"], tmp_path)
    assert done.returncode == 2 and "checkout" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_airflow_extra_registers_the_timetable_through_the_entry_point(wheel: Path, tmp_path: Path) -> None:
    """esteira[airflow] pip-installed: Airflow finds the plugin with no file in its plugins folder."""
    python = make_venv(tmp_path / "venv", wheel, extras=("airflow",))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    done = _run([python, "-c", PLUGIN_REPORT], tmp_path, AIRFLOW_HOME=str(tmp_path / "home"),
                AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert Path(report["module"]).is_relative_to(tmp_path / "venv")
    assert [name for name, _ in report["plugins"]] == ["esteira"] and report["errors"] == {}, report
    assert "EntryPoint(name='esteira'" in report["plugins"][0][1]
    assert "esteira.airflow.timetable.EsteiraTimetable" in report["timetables"]


def test_plugins_folder_and_entry_point_register_it_once(tmp_path: Path) -> None:
    """This repo's set-up: esteira installed editable (so its entry point too) and plugins/ as the
    plugins folder. The folder's copy registers the plugin and the entry point stands aside: Airflow 3
    reports a second plugin of one name as an import error."""
    done = _run([sys.executable, "-c", PLUGIN_REPORT], tmp_path, AIRFLOW_HOME=str(tmp_path / "home"),
                AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert [name for name, _ in report["plugins"]] == ["esteira"] and report["errors"] == {}, report
    assert report["plugins"][0][1].endswith("esteira_plugin.py")  # the folder's, not the entry point's


# --- the locks ---------------------------------------------------------------------------------


def test_locks_are_the_resolution_of_todays_inputs() -> None:
    """An input edited without `make lock` (a pin, a constraint, a compile option) fails here."""
    assert lock.stale() == [], "run `make lock` and commit the locks"


def test_an_input_edited_without_make_lock_is_caught(tmp_path: Path) -> None:
    for name in {name for entry in lock.LOCKS for name in (entry.path, *entry.inputs)}:
        shutil.copy(REPO / name, tmp_path / name)
    assert lock.stale(tmp_path) == []
    with (tmp_path / "requirements-dev.txt").open("a") as f:
        f.write("black==26.1.0\n")
    assert [line.split()[0] for line in lock.stale(tmp_path)] == ["requirements.lock"]


@pytest.mark.parametrize("entry", lock.LOCKS, ids=lambda e: e.path)
def test_lock_agrees_with_its_inputs_and_hashes_everything(entry: lock.Lock) -> None:
    text = (REPO / entry.path).read_text()
    locked = pins(REPO / entry.path)
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 4)[-1])
    assert all("--hash=sha256:" in block for block in blocks if PIN.match(block))
    for name in entry.inputs:
        for package, version in pins(REPO / name).items():
            if package in locked:
                assert locked[package] == version, f"{entry.path}: {package} {locked[package]}, {name} says {version}"
            else:  # a constraint may pin what this environment does not install; a requirement may not
                assert name not in entry.requirements, f"{package} of {name} missing from {entry.path}"


def _extras() -> dict[str, list[str]]:
    return {"": PYPROJECT["project"]["dependencies"], **PYPROJECT["project"]["optional-dependencies"]}


@pytest.mark.parametrize(("lock_file", "groups"), [
    ("requirements.lock", ("", "airflow", "aws", "ml", "dev")),
    ("requirements-e2e.lock", ("e2e",)),
    ("requirements-airflow2.lock", ("", "airflow", "aws", "ml")),
])
def test_pyproject_ranges_hold_the_locked_versions(lock_file: str, groups: tuple[str, ...]) -> None:
    """pyproject's ranges admit what the tests run: `pip install esteira[...] -c constraints.txt` resolves."""
    locked = pins(REPO / lock_file)
    for group in groups:
        for line in _extras()[group]:
            req = Requirement(line)
            version = locked.get(canonicalize_name(req.name))
            assert version is not None, f"{req.name} ({group or 'core'}) is not in {lock_file}"
            assert req.specifier.contains(version, prereleases=True), f"{lock_file}: {req.name}=={version} not {req}"


@pytest.mark.parametrize(("requirements", "group"), [("requirements-dev.txt", "dev"), ("requirements-e2e.txt", "e2e")])
def test_extras_name_what_the_requirement_files_install(requirements: str, group: str) -> None:
    declared = {canonicalize_name(Requirement(line).name) for line in _extras()[group]}
    assert set(pins(REPO / requirements)) == declared
