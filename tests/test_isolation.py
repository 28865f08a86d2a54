"""One broken project never takes the others down: through a real DagBag, `validate` and export.

Each case is one class of load failure a user has hit (a YAML scalar that looks like an
impossible date, explicit tags, deep nesting, a start date that overflows in its time zone, a
value Airflow itself refuses, a broken environments.yaml...), placed beside the good projects.
The DAG file must keep every good project's DAG and show the broken one as an error DAG; the
commands must name the file and exit 2 with no traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from test_bad_input import BASE, sub

from conftest import DAGS, PROJECTS
from esteira.airflow.factory import ERROR_TAG

GOOD = ("churn", "recsys")


def _deep(levels: int) -> Callable[[str], str]:
    return lambda text: text + "extra: " + "[" * levels + "]" * levels + "\n"


def _merge_chain(links: int) -> Callable[[str], str]:
    chain = "a0: &a0 {k: v}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}, k{i}: v}}\n" for i in range(1, links))
    return lambda text: text + chain


def _alias_chain(links: int) -> Callable[[str], str]:
    chain = "b0: &b0 [x]\n" + "".join(f"b{i}: &b{i} [*b{i - 1}]\n" for i in range(1, links))
    return lambda text: text + chain


# (case id, how the broken project's config.yaml is written, words its error must hold)
BROKEN: list[tuple[str, Callable[[str], str], str]] = [
    ("impossible-date-in-description", sub('description: "Demo pipeline"', "description: 2026-02-30"),
     "not a valid one"),
    ("impossible-date-as-key", lambda t: t + "2026-02-31: x\n", "not a valid one"),
    ("impossible-timestamp", sub('description: "Demo pipeline"', "description: 2026-01-01 25:61:00"),
     "not a valid one"),
    ("explicit-int-tag", sub("  retries: 2", "  retries: !!int abc"), "explicit YAML tag"),
    ("local-tag", sub('description: "Demo pipeline"', "description: !foo x"), "explicit YAML tag"),
    ("bad-binary-tag", sub('description: "Demo pipeline"', "description: !!binary '%%%'"), "explicit YAML tag"),
    ("python-object-tag", sub('description: "Demo pipeline"', "description: !!python/object/apply:os.system [id]"),
     "explicit YAML tag"),
    ("nested-3000-deep", _deep(3000), "nest"),
    ("nested-100000-deep", _deep(100_000), "nest"),
    ("merge-key-chain", _merge_chain(100), "nest"),
    ("alias-chain", _alias_chain(100), "nest"),
    ("start-date-overflows-in-its-zone",
     sub("  retries: 2\n", "  retries: 2\n  timezone: Pacific/Kiritimati\n  start_date: 0001-01-01\n"),
     "start_date"),
    ("tag-airflow-refuses", sub('version: "1.0.0"', f'version: "{"1" * 120}"'), "version"),
    ("file-over-the-size-limit", lambda t: t + "# " + "x" * 1_100_000 + "\n", "over 1000000 bytes"),
]


@pytest.fixture
def projects_with(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """The repo's projects plus the given {folder: config text}, in a folder of their own."""

    def make(extra: dict[str, str]) -> Path:
        root = tmp_path / "projects"
        shutil.copytree(PROJECTS, root, ignore=shutil.ignore_patterns("__pycache__"))
        for folder, text in extra.items():
            (root / folder).mkdir()
            (root / folder / "config.yaml").write_text(text)
        return root

    return make


def _demo(folder: str, breakit: Callable[[str], str]) -> str:
    return breakit(BASE.replace("project_name: demo", f"project_name: {folder}"))


@pytest.fixture
def dagbag_of() -> Iterator[Callable[..., DagBag]]:
    def parse(projects: Path, **env: str) -> DagBag:
        os.environ["ESTEIRA_PROJECTS_DIR"] = str(projects)
        os.environ.update(env)
        return DagBag(dag_folder=str(DAGS))

    saved = dict(os.environ)
    yield parse
    os.environ.clear()
    os.environ.update(saved)


def _esteira(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", ["local", "ecs"])
@pytest.mark.parametrize(("case", "breakit", "words"), BROKEN, ids=[c[0] for c in BROKEN])
def test_one_broken_project_leaves_every_good_dag_in_the_dagbag(
    projects_with: Callable[[dict[str, str]], Path], dagbag_of: Callable[..., DagBag],
    case: str, breakit: Callable[[str], str], words: str, backend: str,
) -> None:
    projects = projects_with({"broken": _demo("broken", breakit)})
    bag = dagbag_of(projects, ESTEIRA_BACKEND=backend)
    assert bag.import_errors == {}
    assert set(bag.dags) == {*GOOD, "broken"}
    for name in GOOD:
        assert ERROR_TAG not in bag.dags[name].tags, bag.dags[name].doc_md
    broken = bag.dags["broken"]
    assert ERROR_TAG in broken.tags
    assert str(projects / "broken" / "config.yaml") in broken.doc_md
    assert words in broken.doc_md


@pytest.mark.parametrize(("case", "breakit", "words"), BROKEN, ids=[c[0] for c in BROKEN])
def test_validate_and_export_name_the_file_and_exit_2_without_traceback(
    projects_with: Callable[[dict[str, str]], Path], tmp_path: Path,
    case: str, breakit: Callable[[str], str], words: str,
) -> None:
    projects = projects_with({"broken": _demo("broken", breakit)})
    file = projects / "broken" / "config.yaml"
    validate = _esteira("esteira", "validate", "--projects-dir", str(projects))
    export = _esteira("asl_export", "--all", "--projects-dir", str(projects), "--out", str(tmp_path / "out"))
    for done in (validate, export):
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert str(file) in done.stderr and words in done.stderr, done.stderr
    assert "ok  recsys" in validate.stdout and "ok  churn" in validate.stdout
    assert not (tmp_path / "out").exists()


def test_a_broken_environments_file_shows_on_every_project(
    projects_with: Callable[[dict[str, str]], Path], dagbag_of: Callable[..., DagBag],
) -> None:
    projects = projects_with({})
    env_file = projects / "environments.yaml"
    env_file.write_text(env_file.read_text().replace("schedules_enabled: true", "schedules_enabled: !!bool maybe", 1))
    assert "!!bool maybe" in env_file.read_text()
    bag = dagbag_of(projects, ESTEIRA_BACKEND="ecs")
    assert bag.import_errors == {}
    assert set(bag.dags) == set(GOOD)
    for name in GOOD:
        assert ERROR_TAG in bag.dags[name].tags
        assert f"{env_file}:" in bag.dags[name].doc_md and "explicit YAML tag" in bag.dags[name].doc_md
    validate = _esteira("esteira", "validate", "--projects-dir", str(projects))
    assert validate.returncode == 2 and "Traceback" not in validate.stderr
    assert f"{env_file}:" in validate.stderr


def test_broken_folders_whose_names_sanitise_alike_both_stay_visible(
    projects_with: Callable[[dict[str, str]], Path], dagbag_of: Callable[..., DagBag],
) -> None:
    projects = projects_with({"a b": "project_name: x\n", "a+b": "project_name: y\n", "a_b": "project_name: z\n"})
    bag = dagbag_of(projects)
    assert bag.import_errors == {}
    errors = [dag for dag in bag.dags.values() if ERROR_TAG in dag.tags]
    assert len(errors) == 3
    shown = sorted(next(line for line in dag.doc_md.splitlines() if "config.yaml" in line) for dag in errors)
    for folder in ("a b", "a+b", "a_b"):
        assert any(f"/{folder}/config.yaml" in line for line in shown), shown
    assert {*GOOD} <= set(bag.dags)
