"""config.yaml's JSON Schema: generated from the model, committed, up to date, and what editors
check the example configs against (through the `# yaml-language-server: $schema=` line)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from test_bad_input import BASE, sub

from conftest import PROJECTS, REPO
from esteira.schema import SCHEMA_FILE, config_schema

EXAMPLES = sorted(PROJECTS.glob("*/config.yaml"))
MODELINE = "# yaml-language-server: $schema=../../plugins/esteira/data/config.schema.json"


def as_editor_sees(text: str) -> Any:
    """YAML as a language server reads it: dates stay text."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value.isoformat() if isinstance(value, dt.date) else value
    return plain(yaml.safe_load(text))


def test_the_committed_schema_is_the_models() -> None:
    done = subprocess.run([sys.executable, "-m", "esteira", "schema", "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_check_says_how_to_regenerate_a_stale_copy(tmp_path: Path) -> None:
    stale = tmp_path / "config.schema.json"
    stale.write_text("{}\n")
    done = subprocess.run([sys.executable, "-m", "esteira", "schema", "--check", str(stale)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and f"python -m esteira schema --out {stale}" in done.stderr


@pytest.mark.parametrize("config", [*EXAMPLES, REPO / "tests" / "fixtures" / "seed" / "recsys" / "config.yaml"],
                         ids=lambda p: p.parent.name if p.parent.parent == PROJECTS else "seed")
def test_every_example_config_is_valid_under_the_schema(config: Path) -> None:
    jsonschema.validate(as_editor_sees(config.read_text()), config_schema())


@pytest.mark.parametrize("config", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_configs_point_editors_at_the_schema(config: Path) -> None:
    assert config.read_text().splitlines()[0] == MODELINE
    assert (config.parent / MODELINE.split("=", 1)[1]).resolve() == SCHEMA_FILE


@pytest.mark.parametrize(("breakit", "words"), [
    (sub("schedule:\n", "schedul:\n"), "Additional properties are not allowed"),
    (sub("  retries: 2", '  retries: "2"'), "is not of type 'integer'"),
    (sub('orchestrator: "step_functions"', 'orchestrator: "argo"'), "is not one of"),
])
def test_the_schema_refuses_what_an_editor_should_underline(breakit: Any, words: str) -> None:
    with pytest.raises(jsonschema.ValidationError) as info:
        jsonschema.validate(as_editor_sees(breakit(BASE)), config_schema())
    assert words in str(info.value)
