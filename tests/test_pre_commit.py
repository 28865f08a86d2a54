""".pre-commit-config.yaml: local hooks on the tools .venv already has, so it runs offline.

Every hook's check also runs elsewhere in `make test` (ruff, mypy, test_schema, validate, zizmor, the
lock digests), so the whole `pre-commit run --all-files` (~9 s) is not repeated here: this holds the
config to its promise (local, system, tools that exist) and runs one hook through pre-commit itself.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".pre-commit-config.yaml"
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"


def test_hooks_are_local_and_run_tools_the_venv_has() -> None:
    repos = yaml.safe_load(CONFIG.read_text())["repos"]
    assert [r["repo"] for r in repos] == ["local"]  # nothing to download
    hooks = repos[0]["hooks"]
    assert {h["id"] for h in hooks} == {"ruff", "mypy", "esteira-validate", "esteira-schema", "config-json-schema",
                                        "zizmor", "locks"}
    for hook in hooks:
        assert hook["language"] == "system", hook["id"]
        argv = shlex.split(hook["entry"])
        tool = shlex.split(argv[2])[0] if argv[0] == "bash" else argv[0]
        assert tool.startswith(".venv/bin/"), hook["id"]
        assert (REPO / tool).name in {p.name for p in Path(sys.executable).parent.iterdir()}, hook["id"]


def test_config_is_valid_and_a_hook_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path)}
    checked = subprocess.run([PRE_COMMIT, "validate-config", str(CONFIG)], capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run([PRE_COMMIT, "run", "locks", "--all-files"], cwd=REPO, capture_output=True, text=True,
                         env=env, timeout=120)
    assert ran.returncode == 0 and "Passed" in ran.stdout, ran.stdout + ran.stderr
