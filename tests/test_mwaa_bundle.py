"""`python -m esteira mwaa-bundle`: what MWAA deploys, tested in MWAA's layout and from the bundle alone.

MWAA syncs dags/ to $AIRFLOW_HOME/dags, unpacks plugins.zip into $AIRFLOW_HOME/plugins and
pip-installs requirements.txt, which names esteira's wheel in plugins/. The DagBag test does the
same in a temporary folder (tests/mwaa_helpers.py: the wheel installed with pip into a folder of its
own, every other requirement already satisfied here) and parses the bundled dags/ in a fresh
interpreter whose esteira comes from that install and whose projects come from the bundled dags/
folder (ESTEIRA_PROJECTS_DIR unset), with AIRFLOW_ENV_NAME set as MWAA sets it.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.parser import HeaderParser
from pathlib import Path

import airflow
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import esteira
from config_oracle import CONFIGS, expected_edges
from conftest import PROJECTS, REPO
from esteira import mwaa
from esteira.__main__ import main
from esteira.settings import Settings
from mwaa_helpers import (
    MWAA_PLUGINS,
    check_probe,
    install_wheel,
    lay_out,
    probe,
    requirements_here,
    this_checkouts_esteira,
    would_install,
)
from packaging_helpers import wheel_metadata

PACKAGE = REPO / "plugins" / "esteira"
MANIFEST = ".esteira-bundle.json"
CONSTRAINTS = '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-{}/constraints-3.11.txt"'
RUNTIME = {"apache-airflow-providers-amazon"}  # besides the wheel, whose own dependencies pip installs with it
WHEEL = f"esteira-{esteira.__version__}-py3-none-any.whl"


def shipped(root: Path) -> list[Path]:
    """Files under root, relative, less caches and dotfiles: what the bundle should copy."""
    rels = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    return [rel for rel in rels if not rel.name.endswith(".pyc")
            and not any(part == "__pycache__" or part.startswith(".") for part in rel.parts)]


def build(out: Path, *args: str) -> int:
    return main(["mwaa-bundle", "--out", str(out), *args])


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def zip_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "mwaa"
    assert build(out) == 0
    return out


@pytest.fixture(scope="module")
def wheel(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel plugins.zip holds, as a file."""
    path = tmp_path_factory.mktemp("wheel") / WHEEL
    path.write_bytes(zip_entries(bundle / "plugins.zip")[WHEEL])
    return path


@pytest.fixture(scope="module")
def mwaa_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A bundle for this Airflow, deployed as MWAA deploys it: (home, site, requirements as pip reads
    them here). The constraints line names constraints.txt, which pins this environment as Airflow's
    constraints file pins MWAA's."""
    bundle = tmp_path_factory.mktemp("bundle-here") / "mwaa"
    assert build(bundle, "--airflow-version", airflow.__version__) == 0
    home = tmp_path_factory.mktemp("usr-local-airflow")
    lay_out(bundle, home)
    requirements = requirements_here(bundle, home, REPO / "constraints.txt")
    install_wheel(requirements, home / "site-packages")
    return home, home / "site-packages", requirements


def test_the_bundle_has_the_dag_file_the_projects_the_ignore_file_plugins_and_requirements(bundle: Path) -> None:
    got = files(bundle)
    assert set(got) == {
        "dags/esteira_dags.py", "dags/.airflowignore", "plugins.zip", "requirements.txt", MANIFEST,
        *(f"dags/esteira_projects/{rel.as_posix()}" for rel in shipped(PROJECTS)),
    }
    assert got["dags/esteira_dags.py"] == (REPO / "dags" / "esteira_dags.py").read_bytes()
    for name in CONFIGS:
        assert got[f"dags/esteira_projects/{name}/config.yaml"] == (PROJECTS / name / "config.yaml").read_bytes()
    ignored = [line for line in got["dags/.airflowignore"].decode().splitlines() if not line.startswith("#")]
    assert ignored == ["esteira_projects"]


def test_plugins_zip_holds_the_plugin_module_and_the_wheel_only_deterministically(bundle: Path) -> None:
    """Only what must be a plugin (the module registering the timetable) and the wheel pip installs.
    No .airflowignore: the plugin loader imports .py files only (the DagBag test shows it)."""
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert [i.filename for i in infos] == [WHEEL, "esteira_plugin.py"]  # sorted
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in infos} == {0o100644}
        assert archive.read("esteira_plugin.py") == (REPO / "plugins" / "esteira_plugin.py").read_bytes()


def test_the_wheel_is_pyprojects_package_with_its_data_and_entry_points(wheel: Path) -> None:
    names, fields = wheel_metadata(wheel)
    with zipfile.ZipFile(wheel) as archive:
        infos = archive.infolist()
        for name in names:
            if name.startswith("esteira/") or name == "esteira_plugin.py":  # the checkout's bytes, as they are
                assert archive.read(name) == (REPO / "plugins" / name).read_bytes(), name
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    package = {n.removeprefix("esteira/") for n in names if n.startswith("esteira/")}
    assert package == {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
                       if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts}
    assert {"data/config.schema.json", "data/ec2_instance_types.json"} <= package
    assert "[console_scripts]\nesteira = esteira.__main__:main" in entry_points
    assert "[airflow.plugins]\nesteira = esteira_plugin:entry_point_plugin" in entry_points
    assert fields["Version"] == esteira.__version__
    # reproducible: every entry at the earliest zip date, modes of plain files whatever the umask
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o664}  # RECORD: wheel's fixed 0o664


def test_requirements_have_the_constraints_line_the_provider_and_the_wheel_by_its_path_on_mwaa(
    bundle: Path, wheel: Path,
) -> None:
    text = (bundle / "requirements.txt").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines[0] == CONSTRAINTS.format("2.11.0")
    names = {line.split("#")[0].strip() for line in lines[1:-1]}
    assert names == RUNTIME
    # versions come from the constraints file: a different == pin would make pip refuse the file
    assert not any(ch in name for name in names for ch in "=<>~!")
    # the wheel where MWAA unpacks plugins.zip: pip installs it with its metadata's dependencies,
    # which the file's comments name
    assert lines[-1] == f"{MWAA_PLUGINS}/{WHEEL}"
    _, fields = wheel_metadata(wheel)
    for requirement in fields.get_all("Requires-Dist") or []:
        assert (f"#   {requirement}\n" in text) == ("extra ==" not in requirement), requirement


def test_airflow_and_python_versions_name_the_constraints_file(tmp_path: Path) -> None:
    assert build(tmp_path / "b", "--airflow-version", "3.1.5", "--python-version", "3.12") == 0
    assert CONSTRAINTS.format("3.1.5").replace("3.11.txt", "3.12.txt") in (tmp_path / "b" / "requirements.txt").read_text()


def test_the_bundle_is_byte_identical_on_re_runs(tmp_path: Path) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    assert build(first) == 0
    assert build(again) == 0
    assert files(again) == files(first)
    assert build(again) == 0  # into the same folder
    assert files(again) == files(first)


def test_the_wheel_is_byte_identical_whatever_the_umask_clock_and_pip_settings(bundle: Path, tmp_path: Path) -> None:
    """Another process builds the wheel again (the cache is per process): under another umask, with
    SOURCE_DATE_EPOCH and pip settings of the user's, the bundle's bytes are the same."""
    out = tmp_path / "out"
    env = this_checkouts_esteira(SOURCE_DATE_EPOCH="1700000000", PIP_NO_COMPILE="1", PIP_CONFIG_FILE="/nonexistent")
    done = subprocess.run([sys.executable, "-m", "esteira", "mwaa-bundle", "--out", str(out)], capture_output=True,
                          text=True, env=env, timeout=300, preexec_fn=lambda: os.umask(0o077))
    assert done.returncode == 0, done.stderr
    assert files(out) == files(bundle)


def test_building_the_wheel_leaves_nothing_in_the_checkout() -> None:
    """setuptools writes build/ and *.egg-info where it builds: into a temporary copy, not here."""

    def artefacts() -> set[tuple[str, int]]:
        found = [REPO / "build" / "lib", *(REPO / "build").glob("bdist*"), *REPO.glob("*.egg-info"),
                 *(p for folder in mwaa.wheel_source_dirs() for p in folder.glob("*.egg-info"))]
        return {(str(p), p.stat().st_mtime_ns) for p in found if p.exists()}

    before = artefacts()  # an old checkout may hold some from an earlier `pip install -e .`
    mwaa._WHEELS.clear()  # build now, whatever this process built before
    mwaa.esteira_wheel()
    assert artefacts() == before


def test_the_wheel_is_built_once_per_process_for_the_same_sources(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[dict[str, bytes]] = []
    build_wheel = mwaa._build_wheel

    def counted(sources: dict[str, bytes]) -> tuple[str, bytes]:
        builds.append(sources)
        return build_wheel(sources)

    monkeypatch.setattr(mwaa, "_build_wheel", counted)
    checkout = tmp_path / "checkout"  # the same sources elsewhere: the same wheel, from the cache
    for rel, data in mwaa.wheel_sources().items():
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        (checkout / rel).write_bytes(data)
    first = mwaa.esteira_wheel()
    assert mwaa.esteira_wheel(checkout) == first and mwaa.esteira_wheel() == first
    assert len(builds) <= 1  # none when an earlier test of this process built it
    schema = checkout / "plugins" / "esteira" / "data" / "config.schema.json"
    schema.write_text(schema.read_text() + "\n")  # an edit: another wheel, built once
    edited = mwaa.esteira_wheel(checkout)
    assert edited[0] == first[0] and edited[1] != first[1]
    assert mwaa.esteira_wheel(checkout) == edited
    assert len(builds) <= 2 and builds[-1][schema.relative_to(checkout).as_posix()].endswith(b"}\n\n")


@pytest.mark.parametrize(("pyproject", "message"), [
    (None, "pyproject.toml: missing; the bundle takes it from a checkout of the repo"),
    ('[project]\nname = "other"\n', "pyproject.toml: not esteira's; run mwaa-bundle from a checkout"),
    ("[project\n", "pyproject.toml: not readable TOML"),
    ("broken backend", "could not build esteira's wheel with"),
])
def test_without_a_checkout_to_build_the_wheel_from_the_bundle_is_refused(
    tmp_path: Path, pyproject: str | None, message: str,
) -> None:
    checkout = tmp_path / "site"
    if pyproject == "broken backend":  # a checkout whose pyproject names a backend not installed
        for rel, data in mwaa.wheel_sources().items():
            (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
            (checkout / rel).write_bytes(data)
        text = (checkout / "pyproject.toml").read_text().replace("setuptools.build_meta", "no_such_backend")
        (checkout / "pyproject.toml").write_text(text)
    else:
        shutil.copytree(PACKAGE, checkout / "plugins" / "esteira", ignore=shutil.ignore_patterns("__pycache__"))
        if pyproject is not None:
            (checkout / "pyproject.toml").write_text(pyproject)
    with pytest.raises(mwaa.BundleError, match="^.*" + message.replace("(", r"\(")):
        mwaa.render_bundle(PROJECTS, package_dir=checkout / "plugins" / "esteira")


def test_the_requirements_install_here_as_on_mwaa_only_the_wheel_is_new(mwaa_home: tuple[Path, Path, Path]) -> None:
    """pip, offline, under this environment's constraints: the whole file resolves, and all it
    would install is esteira (every other line, and the wheel's dependencies, are satisfied)."""
    _, site, requirements = mwaa_home
    assert [name.split("==")[0] for name in would_install(requirements)] == ["esteira"]
    pins = {canonicalize_name(line.split("==")[0]): line.split("==")[1].strip()
            for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line and not line.startswith("#")}
    [dist_info] = site.glob("esteira-*.dist-info")
    fields = HeaderParser().parsestr((dist_info / "METADATA").read_text())
    wanted = [Requirement(line) for line in fields.get_all("Requires-Dist") or [] if "extra ==" not in line]
    wanted += [Requirement(name) for name in RUNTIME]
    for req in wanted:  # the constraints pin each, in the wheel's range: pip would not refuse the file
        assert req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True), (req, pins.get(req.name))


def test_the_bundled_dags_folder_loads_with_dagbag_from_the_installed_wheel(mwaa_home: tuple[Path, Path, Path]) -> None:
    home, site, _ = mwaa_home
    # A project's own Python files are not DAG files: .airflowignore keeps the processor out.
    decoy = home / "dags" / "esteira_projects" / next(iter(CONFIGS)) / "steps" / "not_a_dag.py"
    decoy.parent.mkdir(exist_ok=True)
    decoy.write_text("# mentions airflow and DAG, as Airflow's safe mode looks for\nraise SystemExit('parsed')\n")
    got = probe(home, site)
    check_probe(got, home, site, CONFIGS)
    for name, cfg in CONFIGS.items():
        assert got["dags"][name]["edges"] == sorted([a, b] for a, b in expected_edges(cfg))


def test_a_dag_file_reads_the_esteira_projects_beside_it_unless_esteira_projects_dir_says(tmp_path: Path) -> None:
    """MWAA syncs only dags/, and esteira lives in site-packages: the bundle's projects are found
    from the DAG file's folder. Elsewhere (the repo's dags/) the checkout's projects/ as before."""
    dags = tmp_path / "dags"
    (dags / "esteira_projects").mkdir(parents=True)
    assert Settings.from_environ({}, dags_folder=dags).projects_dir == dags / "esteira_projects"
    assert Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(PROJECTS)}, dags_folder=dags).projects_dir == PROJECTS
    assert Settings.from_environ({}, dags_folder=REPO / "dags").projects_dir == PROJECTS
    assert Settings.from_environ({}).projects_dir == PROJECTS


def test_help_says_what_the_bundle_holds_and_how_to_deploy_it() -> None:
    proc = subprocess.run([sys.executable, "-m", "esteira", "mwaa-bundle", "--help"], capture_output=True,
                          text=True, timeout=60, env=this_checkouts_esteira())
    assert proc.returncode == 0
    for text in ("plugins.zip", "requirements.txt", "esteira_projects", ".airflowignore", "--airflow-version",
                 "esteira's wheel", "esteira_plugin.py", f"{MWAA_PLUGINS}/esteira-*.whl", "checkout",
                 "build/mwaa", "aws s3 sync", "update-environment", MANIFEST,
                 "exit codes: 0 written; 2 invalid project, bad usage or a folder esteira does not own",
                 "3 could not write (I/O error)"):
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
    (["--airflow-version", "2.10.5"], "needs Airflow 2.11 or later"),
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


def test_an_output_folder_inside_the_projects_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    projects = tmp_path / "good"
    shutil.copytree(PROJECTS, projects)
    assert build(projects / "bundle", "--projects-dir", str(projects)) == 2
    assert "inside" in capsys.readouterr().err
    assert not (projects / "bundle").exists()


# The output folder: esteira writes into an empty folder or its own previous bundle (known by the
# manifest), and never replaces or deletes a file it did not write. Run as a user runs it.

def cli(out: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "esteira", "mwaa-bundle", "--out", str(out), *args],
                          capture_output=True, text=True, env=this_checkouts_esteira(PYTHONDONTWRITEBYTECODE="1"),
                          timeout=120, **kwargs)  # type: ignore[call-overload]


def ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr


def one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The error a refused or failed run prints: one line, no traceback."""
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("python -m esteira mwaa-bundle: error: ")
    return line


def snapshot(root: Path) -> dict[str, tuple[bytes | str, int]]:
    """Every entry under root (symlinks not followed): its bytes or link target, and mtime."""
    got: dict[str, tuple[bytes | str, int]] = {}
    for path in sorted(root.rglob("*")):
        rel, mtime = path.relative_to(root).as_posix(), path.lstat().st_mtime_ns
        if path.is_symlink():
            got[rel] = (os.readlink(path), mtime)
        elif path.is_file():
            got[rel] = (path.read_bytes(), mtime)
    return got


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".esteira-tmp" in p.name]


@pytest.fixture
def my_projects(tmp_path: Path) -> Path:
    dest = tmp_path / "projects"
    shutil.copytree(PROJECTS, dest, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    return dest


@pytest.mark.parametrize("theirs", ["dags/team_etl.py", "notes.txt"])
@pytest.mark.parametrize("folder", ["not a bundle", "a previous bundle"])
def test_a_file_esteira_did_not_write_is_refused_named_and_left_alone(tmp_path: Path, theirs: str,
                                                                     folder: str) -> None:
    out = tmp_path / "out"
    if folder == "a previous bundle":
        ok(cli(out))
    (out / theirs).parent.mkdir(parents=True, exist_ok=True)
    (out / theirs).write_text("from airflow import DAG  # the team's own DAG\n")
    before = snapshot(out)
    line = one_line_error(cli(out), 2)
    assert f"1 file esteira did not write ({theirs})" in line
    assert "Nothing written" in line and "Choose an empty folder" in line
    assert snapshot(out) == before  # theirs survives, and nothing of ours was written or removed


def test_a_refusal_names_the_first_few_files_and_counts_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "dags").mkdir(parents=True)
    for n in range(8):
        (out / "dags" / f"team_{n}.py").write_text("")
    line = one_line_error(cli(out), 2)
    assert "8 files esteira did not write (dags/team_0.py, dags/team_1.py, dags/team_2.py, dags/team_3.py, dags/team_4.py and 3 more)" in line
    assert MANIFEST in line  # no manifest: says so, and that a pre-manifest bundle must go once


def test_a_re_run_over_its_own_bundle_is_byte_identical_and_rewrites_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(cli(out))
    before = snapshot(out)
    proc = cli(out)
    ok(proc)
    assert "0 written" in proc.stdout
    assert snapshot(out) == before  # same bytes, same mtimes: `aws s3 sync` uploads nothing
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format"] == 1
    assert "previous" not in manifest
    assert manifest["files"] == {rel: hashlib.sha256(data).hexdigest() for rel, (data, _) in before.items()
                                 if rel != MANIFEST}
    assert list(manifest["files"]) == sorted(manifest["files"])


def test_a_bundle_file_deleted_by_hand_is_written_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(cli(out))
    before = files(out)
    (out / "dags" / "esteira_dags.py").unlink()
    ok(cli(out))
    assert files(out) == before


def test_a_file_removed_from_the_projects_leaves_the_bundle_on_re_run(my_projects: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    extra = my_projects / "churn" / "extra" / "deep" / "notes.md"
    extra.parent.mkdir(parents=True)
    extra.write_text("beside the config: shipped\n")
    ok(cli(out, "--projects-dir", str(my_projects)))
    assert (out / "dags" / "esteira_projects" / "churn" / "extra" / "deep" / "notes.md").is_file()
    assert (out / "dags" / "esteira_projects" / "recsys" / "config.yaml").is_file()

    shutil.rmtree(my_projects / "churn" / "extra")
    shutil.rmtree(my_projects / "recsys")  # a whole project retired
    proc = cli(out, "--projects-dir", str(my_projects))
    ok(proc)
    assert "2 removed" in proc.stdout
    ok(cli(tmp_path / "fresh", "--projects-dir", str(my_projects)))
    assert files(out) == files(tmp_path / "fresh")  # no stale file, and the folders they left are gone
    assert not (out / "dags" / "esteira_projects" / "churn" / "extra").exists()
    assert not (out / "dags" / "esteira_projects" / "recsys").exists()


@pytest.mark.parametrize("edited", ["requirements.txt", "dags/esteira_projects/churn/config.yaml"])
def test_an_edited_bundle_file_is_refused_named_and_kept(tmp_path: Path, edited: str) -> None:
    out = tmp_path / "out"
    ok(cli(out))
    with (out / edited).open("a") as handle:
        handle.write("# a hand edit\n")
    before = snapshot(out)
    line = one_line_error(cli(out), 2)
    assert f"1 file changed since esteira wrote it, so no longer esteira's ({edited})" in line
    assert snapshot(out) == before


def test_an_edited_file_the_new_bundle_would_remove_is_refused_too(my_projects: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(cli(out, "--projects-dir", str(my_projects)))
    shutil.rmtree(my_projects / "recsys")
    (out / "dags" / "esteira_projects" / "recsys" / "config.yaml").write_text("edited in the bundle\n")
    before = snapshot(out)
    line = one_line_error(cli(out, "--projects-dir", str(my_projects)), 2)
    assert "dags/esteira_projects/recsys/config.yaml" in line
    assert snapshot(out) == before


@pytest.mark.parametrize("where", ["requirements.txt", "dags"])
def test_a_symlink_in_the_folder_is_refused_and_never_followed(tmp_path: Path, where: str) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    ok(cli(out))
    shutil.move(out / where, elsewhere)  # same bytes as esteira wrote, reached through a symlink
    (out / where).symlink_to(elsewhere)
    outside = snapshot(tmp_path / "elsewhere") if where == "dags" else {"": (elsewhere.read_bytes(), 0)}
    before = snapshot(out)
    line = one_line_error(cli(out), 2)
    assert f"{where} (a symlink)" in line
    assert snapshot(out) == before
    assert (snapshot(elsewhere) if where == "dags" else {"": (elsewhere.read_bytes(), 0)}) == outside


def test_a_manifest_esteira_cannot_read_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(cli(out))
    (out / MANIFEST).write_text('{"format": 1, "files": {"../../etc/passwd": "00"}}\n')
    before = snapshot(out)
    line = one_line_error(cli(out), 2)
    assert f"{MANIFEST} is not a manifest this esteira wrote" in line
    assert snapshot(out) == before


@pytest.mark.parametrize("under", ["", "sub"])
def test_out_naming_a_regular_file_is_a_clear_error_exit_3(tmp_path: Path, under: str) -> None:
    a_file = tmp_path / "build"
    a_file.write_text("a file, not a folder\n")
    out = a_file / under if under else a_file
    line = one_line_error(cli(out), 3)
    reason = "Not a directory" if under else "it exists and is not a folder"
    assert line.endswith(f"could not write {out}: {reason}") or f"could not write {out}: {reason};" in line
    assert a_file.read_text() == "a file, not a folder\n"


@pytest.mark.parametrize("folder", ["an empty folder", "a previous bundle's project folder"])
def test_a_read_only_folder_exits_3_without_traceback_or_temp_file(my_projects: Path, tmp_path: Path,
                                                                  folder: str) -> None:
    out = tmp_path / "out"
    read_only, blocked = out, out / MANIFEST
    if folder == "an empty folder":
        out.mkdir()
    else:
        ok(cli(out, "--projects-dir", str(my_projects)))
        config = my_projects / "churn" / "config.yaml"
        config.write_text(config.read_text() + "# a new comment\n")
        read_only, blocked = out / "dags/esteira_projects/churn", out / "dags/esteira_projects/churn/config.yaml"
    read_only.chmod(0o555)
    try:
        if os.access(read_only, os.W_OK):  # root (with CAP_DAC_OVERRIDE) writes there all the same
            pytest.skip("this user (root) can write into a read-only folder; the write error is provoked "
                        "as root too by test_a_write_failing_half_way_exits_3_leaves_no_temp_file_...")
        line = one_line_error(cli(out, "--projects-dir", str(my_projects)), 3)
    finally:
        read_only.chmod(0o755)
    assert line.endswith(f"could not write {blocked}: Permission denied")
    assert temp_files(out) == []
    if folder == "an empty folder":
        assert list(out.iterdir()) == []
    else:
        ok(cli(out, "--projects-dir", str(my_projects)))  # writable again: the next run finishes the job
        assert (out / "dags/esteira_projects/churn/config.yaml").read_bytes() == config.read_bytes()


def test_a_write_failing_half_way_exits_3_leaves_no_temp_file_and_the_next_run_recovers(
    my_projects: Path, tmp_path: Path,
) -> None:
    """A real I/O error, even as root: the file-size limit (RLIMIT_FSIZE) makes a big write fail
    with EFBIG ('File too large'), as a full disk would, after smaller files were replaced. The limit
    lets the wheel be built (in a temporary folder: its sources and the wheel, under 1 MiB)."""
    limit = 1024 * 1024
    out, big = tmp_path / "out", my_projects / "churn" / "zz_big.bin"
    big.write_bytes(b"a" * 2 * limit)
    ok(cli(out, "--projects-dir", str(my_projects)))

    config = my_projects / "churn" / "config.yaml"
    config.write_text(config.read_text() + "# a new comment\n")  # small: written before the failure
    big.write_bytes(b"b" * 2 * limit)  # too big for the limit

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = cli(out, "--projects-dir", str(my_projects), preexec_fn=limit_file_size)
    line = one_line_error(proc, 3)
    assert line.endswith(f"could not write {out / 'dags/esteira_projects/churn/zz_big.bin'}: File too large")
    assert temp_files(out) == []
    assert (out / "dags/esteira_projects/churn/config.yaml").read_bytes() == config.read_bytes()  # replaced
    assert (out / "dags/esteira_projects/churn/zz_big.bin").read_bytes() == b"a" * 2 * limit  # not yet

    ok(cli(out, "--projects-dir", str(my_projects)))  # the half-written folder is still esteira's
    ok(cli(tmp_path / "fresh", "--projects-dir", str(my_projects)))
    assert files(out) == files(tmp_path / "fresh")


def test_a_wheel_that_cannot_be_built_for_lack_of_space_exits_3_and_writes_nothing(tmp_path: Path) -> None:
    """The same limit, below the size of the wheel's sources: the temporary copy fails, named."""
    limit = 16 * 1024

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    line = one_line_error(cli(tmp_path / "out", preexec_fn=limit_file_size), 3)
    assert "could not write " in line and "esteira-wheel-" in line and line.endswith(": File too large")
    assert not (tmp_path / "out").exists()


def test_files_get_the_users_umask(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(cli(out, preexec_fn=lambda: os.umask(0o027)))
    for path in out.rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o750 if path.is_dir() else 0o640), path


def test_an_interrupted_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C mid-file (KeyboardInterrupt inside the write): the temporary file is removed."""
    out = tmp_path / "out"
    rendered = mwaa.render_bundle(PROJECTS)
    fsync, calls = os.fsync, []

    def interrupt_the_second_file(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the manifest went first; now the first bundle file
            raise KeyboardInterrupt
        fsync(fd)

    monkeypatch.setattr(os, "fsync", interrupt_the_second_file)
    with pytest.raises(KeyboardInterrupt):
        mwaa.write_bundle(out, rendered)
    monkeypatch.undo()
    assert temp_files(out) == []
    assert sorted(p.name for p in out.rglob("*")) == sorted([MANIFEST, "dags"])
    assert mwaa.write_bundle(out, rendered).written == list(rendered)  # the next run owns the folder
    assert files(out) == {**rendered, MANIFEST: mwaa.manifest_json(
        {rel: hashlib.sha256(data).hexdigest() for rel, data in rendered.items()})}
