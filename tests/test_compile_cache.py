"""The compile cache: a parse whose inputs did not change is served from it, and nothing else is.

The key is the content of everything a DAG depends on; these tests change each input in turn and
require the next parse to show the change, tamper with entries to prove the cache is really read,
and race parses against edits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from airflow.serialization.serialized_objects import DagSerialization
from test_bad_input import BASE

from conftest import PROJECTS
from esteira import compile_cache
from esteira.airflow import project_specs
from esteira.airflow.factory import ERROR_TAG, build_all
from esteira.settings import Settings

DEMO = BASE.replace("project_name: demo", "project_name: demo")


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    root.mkdir()
    (root / "environments.yaml").write_bytes((PROJECTS / "environments.yaml").read_bytes())
    (root / "demo").mkdir()
    (root / "demo" / "config.yaml").write_text(DEMO)
    return root


def _settings(projects: Path, cache: Path | str, **extra: str) -> Settings:
    return Settings.from_environ({"ESTEIRA_PROJECTS_DIR": str(projects), "ESTEIRA_CACHE_DIR": str(cache), **extra})


def _serialized(dag: Any) -> dict[str, Any]:
    return DagSerialization.to_dict(dag)  # type: ignore[no-any-return]


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.json"))


@pytest.mark.parametrize("backend", ["local", "ecs"])
def test_a_dag_served_from_the_cache_is_the_dag_a_compile_gives(projects: Path, tmp_path: Path, backend: str) -> None:
    uncached = build_all(_settings(projects, "off", ESTEIRA_BACKEND=backend))["demo"]
    first = build_all(_settings(projects, tmp_path / "cache", ESTEIRA_BACKEND=backend))["demo"]
    assert len(_entries(tmp_path / "cache")) == 1
    served = build_all(_settings(projects, tmp_path / "cache", ESTEIRA_BACKEND=backend))["demo"]
    assert _serialized(served) == _serialized(first) == _serialized(uncached)
    assert vars(served.on_failure_callback) == vars(uncached.on_failure_callback)


def test_the_cache_is_read_and_a_change_to_any_input_is_never_served_stale(
        projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(project_specs, "code_fingerprint", lambda: "esteira code A")
    build_all(_settings(projects, cache))
    [entry] = _entries(cache)
    stored = json.loads(entry.read_text())
    stored["value"]["spec"]["description"] = "served from the cache"
    entry.write_text(json.dumps(stored))
    # same inputs: the (tampered) entry is what the parse uses, so the cache is really read
    assert build_all(_settings(projects, cache))["demo"].description == "served from the cache"
    # each input changed alone gives a fresh compile
    assert build_all(_settings(projects, cache, ESTEIRA_BACKEND="ecs"))["demo"].description == "Demo pipeline"
    entry.write_text(json.dumps(stored))  # the compile above replaced the project's entry; tamper again
    assert build_all(_settings(projects, cache))["demo"].description == "served from the cache"
    monkeypatch.setattr(project_specs, "code_fingerprint", lambda: "esteira code B")
    assert build_all(_settings(projects, cache))["demo"].description == "Demo pipeline"
    (projects / "demo" / "config.yaml").write_text(DEMO.replace("retries: 2", "retries: 4"))
    dag = build_all(_settings(projects, cache))["demo"]
    assert dag.description == "Demo pipeline" and {t.retries for t in dag.tasks} == {4}
    env = projects / "environments.yaml"
    env.write_text(env.read_text().replace("home: ../.esteira", "home: ./elsewhere"))
    [task] = build_all(_settings(projects, cache))["demo"].tasks[:1]
    assert "elsewhere" in task.env["DATA_ROOT"], task.env


def test_the_code_fingerprint_changes_with_any_file_of_the_package(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "esteira"
    shutil.copytree(compile_cache.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(compile_cache, "PACKAGE_DIR", package)
    prints = []
    for change in (lambda: None, lambda: (package / "plan.py").write_text("# one line changed\n"),
                   lambda: (package / "data" / "new.json").write_text("{}")):
        change()
        compile_cache.code_fingerprint.cache_clear()
        prints.append(compile_cache.code_fingerprint())
    compile_cache.code_fingerprint.cache_clear()
    assert len(set(prints)) == 3


def test_a_broken_project_is_cached_as_its_error_and_comes_back_when_fixed(projects: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    config = projects / "demo" / "config.yaml"
    config.write_text(DEMO.replace("cpu: 1.0", "cpu: lots"))
    for _ in range(2):
        dag = build_all(_settings(projects, cache))["demo"]
        assert ERROR_TAG in dag.tags and "cpu" in dag.doc_md and str(config) in dag.doc_md
    config.write_text(DEMO)
    assert ERROR_TAG not in build_all(_settings(projects, cache))["demo"].tags


def test_a_damaged_entry_is_a_miss(projects: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    build_all(_settings(projects, cache))
    [entry] = _entries(cache)
    key = json.loads(entry.read_text())["key"]
    damages = [entry.read_bytes()[:40], b"", b'{"key": "another", "value": {"spec": {}}}',
               # the right key, a spec that does not build: compiled afresh, not an error DAG
               json.dumps({"key": key, "value": {"spec": {"dag_id": 7}}}).encode(),
               json.dumps({"key": key, "value": {"error": 7}}).encode()]
    for damage in damages:
        entry.write_bytes(damage)
        dag = build_all(_settings(projects, cache))["demo"]
        assert dag.description == "Demo pipeline" and ERROR_TAG not in dag.tags


def test_a_cache_folder_others_can_write_is_not_used(projects: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    assert build_all(_settings(projects, cache))["demo"].description == "Demo pipeline"
    assert _entries(cache) == []
    assert "writable by others" in caplog.text
    build_all(_settings(projects, "off"))
    assert not (tmp_path / "off").exists()


PARSE = textwrap.dedent("""
    import sys
    import airflow.providers.amazon.aws.notifications.sns, airflow.providers.amazon.aws.operators.ecs
    from esteira.airflow.factory import build_all
    dag = build_all()["demo"]
    print(dag.description, sorted({t.retries for t in dag.tasks}),
          sorted(m for m in ("esteira.config", "esteira.model", "esteira.plan", "email_validator") if m in sys.modules))
""")


def _parse(projects: Path, cache: Path) -> str:
    done = subprocess.run([sys.executable, "-c", PARSE], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ESTEIRA_PROJECTS_DIR": str(projects), "ESTEIRA_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]  # Airflow may log a line first


def test_a_parse_served_by_the_cache_never_imports_the_config_model(projects: Path, tmp_path: Path) -> None:
    cold = _parse(projects, tmp_path / "cache")
    assert cold.startswith("Demo pipeline [2]") and "esteira.config" in cold
    assert _parse(projects, tmp_path / "cache") == "Demo pipeline [2] []"


RACE = textwrap.dedent("""
    import sys
    from esteira.airflow.factory import ERROR_TAG, build_all
    seen = set()
    for _ in range(int(sys.argv[1])):
        dag = build_all()["demo"]
        seen.add("error" if ERROR_TAG in dag.tags else f"{dag.description}|{sorted({t.retries for t in dag.tasks})}")
    print("\\n".join(f"seen:{s}" for s in sorted(seen)))
""")


def test_parses_racing_edits_only_ever_see_a_whole_config(projects: Path, tmp_path: Path) -> None:
    """Each variant changes two fields; a DAG mixing them would be a stale or torn entry."""
    config = projects / "demo" / "config.yaml"
    variants = [DEMO.replace('"Demo pipeline"', f'"variant {n}"').replace("retries: 2", f"retries: {n}")
                for n in (1, 3)]
    env = {**os.environ, "ESTEIRA_PROJECTS_DIR": str(projects), "ESTEIRA_CACHE_DIR": str(tmp_path / "cache")}
    parsers = [subprocess.Popen([sys.executable, "-c", RACE, "40"], stdout=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    flips = 0
    while any(p.poll() is None for p in parsers):
        config.write_text(variants[flips % 2])  # not atomic: a parse may read half a file
        flips += 1
    seen = {line.removeprefix("seen:") for p in parsers for line in p.communicate()[0].splitlines()
            if line.startswith("seen:")}  # Airflow logs to stdout too
    assert flips > 10
    assert seen <= {"variant 1|[1]", "variant 3|[3]", "error"}, seen
    assert seen & {"variant 1|[1]", "variant 3|[3]"}
    last = variants[(flips - 1) % 2]
    assert _parse(projects, tmp_path / "cache").startswith("variant 1 [1]" if "variant 1" in last else "variant 3 [3]")
