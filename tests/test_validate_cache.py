"""`esteira validate` remembers which projects were valid, by content: only changed ones compile again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECTS


def _validate(projects: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "esteira", "validate", "--projects-dir", str(projects)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "ESTEIRA_CACHE_DIR": str(cache)})


def test_a_verdict_is_reused_only_for_the_same_bytes(tmp_path: Path) -> None:
    projects, cache = tmp_path / "projects", tmp_path / "cache"
    for name in ("environments.yaml", "recsys/config.yaml", "churn/config.yaml"):
        (projects / name).parent.mkdir(parents=True, exist_ok=True)
        (projects / name).write_bytes((PROJECTS / name).read_bytes())
    first = _validate(projects, cache)
    assert first.returncode == 0 and "ok  recsys: 4 steps" in first.stdout
    assert _validate(projects, cache).stdout == first.stdout
    # the stored verdicts are what a second run prints: tamper with one to see it read
    [entry] = [p for p in cache.rglob("*.json") if "recsys" in p.read_text()]
    stored = json.loads(entry.read_text())
    stored["value"]["steps"] = 99
    entry.write_text(json.dumps(stored))
    assert "ok  recsys: 99 steps" in _validate(projects, cache).stdout
    # a changed byte in the config or in environments.yaml: compiled again
    config = projects / "recsys" / "config.yaml"
    config.write_text(config.read_text() + "\n")
    assert "ok  recsys: 4 steps" in _validate(projects, cache).stdout
    env = projects / "environments.yaml"
    env.write_text(env.read_text().replace("region: us-east-1", "region: mars-east-1", 1))
    broken = _validate(projects, cache)
    assert broken.returncode == 2 and "region" in broken.stderr and "Traceback" not in broken.stderr
    config.write_text(config.read_text().replace("steps:", "stepz:", 1))
    env.write_text((PROJECTS / "environments.yaml").read_text())
    broken = _validate(projects, cache)
    assert broken.returncode == 2 and str(config) in broken.stderr and "ok  churn" in broken.stdout
