"""`esteira export` served from the compile cache: the same bytes as a compile, never stale.

An export whose config, environments.yaml, environment and esteira code are unchanged reads its
three files from the cache and imports neither the config model nor the renderers; a change to
any input compiles again, a broken config is refused as ever, and --check still finds drift.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import PROJECTS

RUN = textwrap.dedent("""
    import sys
    from esteira.export_command import main
    code = main(sys.argv[1:])
    loaded = sorted(m for m in ("esteira.config", "esteira.compile", "esteira.asl") if m in sys.modules)
    print("LOADED", " ".join(loaded) or "-")
    sys.exit(code)
""")


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    root.mkdir()
    for name in ("environments.yaml", "recsys/config.yaml", "churn/config.yaml"):
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes((PROJECTS / name).read_bytes())
    return root


def _export(projects: Path, out: Path, cache: Path | str, *args: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-c", RUN, *args, "--projects-dir", str(projects), "--out", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ESTEIRA_CACHE_DIR": str(cache)})
    loaded = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    return done.returncode, loaded.removeprefix("LOADED "), done.stderr


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_cached_export_writes_the_bytes_a_compile_writes_without_importing_the_renderers(
        projects: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _export(projects, tmp_path / "cold", "off", "--all", "--env", "prd")[:2] == (0, "esteira.asl esteira.compile esteira.config")
    assert _export(projects, tmp_path / "first", cache, "--all", "--env", "prd")[0] == 0
    code, loaded, _ = _export(projects, tmp_path / "served", cache, "--all", "--env", "prd")
    assert (code, loaded) == (0, "-")
    assert _tree(tmp_path / "served") == _tree(tmp_path / "first") == _tree(tmp_path / "cold")
    # another environment is another key
    assert _export(projects, tmp_path / "dev", cache, "recsys")[1] != "-"


def test_any_changed_input_compiles_again_and_a_broken_config_is_refused(projects: Path, tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    assert _export(projects, out, cache, "recsys")[0] == 0
    machine = out / "dev" / "recsys" / "state_machine.asl.json"
    before = machine.read_text()
    config = projects / "recsys" / "config.yaml"
    config.write_text(config.read_text() + "\n")  # a byte changed, the same meaning
    code, loaded, _ = _export(projects, out, cache, "recsys")
    assert code == 0 and loaded != "-" and machine.read_text() == before
    env = projects / "environments.yaml"
    env.write_text(env.read_text().replace("111111111111", "222222222222"))
    code, loaded, _ = _export(projects, out, cache, "recsys")
    assert code == 0 and loaded != "-" and "222222222222" in (out / "dev" / "recsys" / "stack.cfn.json").read_text()
    config.write_text(config.read_text().replace("steps:", "stepz:", 1))
    code, _loaded, stderr = _export(projects, out, cache, "recsys")
    assert code == 2 and str(config) in stderr and "Traceback" not in stderr


def test_check_served_from_the_cache_still_finds_drift(projects: Path, tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    assert _export(projects, out, cache, "--all")[0] == 0
    assert _export(projects, out, cache, "--all", "--check")[:2] == (0, "-")
    (out / "dev" / "churn" / "schedules.json").write_text("[]\n")
    (out / "dev" / "gone").mkdir()
    code, loaded, stderr = _export(projects, out, cache, "--all", "--check")
    assert (code, loaded) == (1, "-") and "2 file(s) differ" in stderr  # the edited file, the stale folder
