"""The JSON Schema of config.yaml, generated from the pydantic model, for editors.

An editor with the YAML language server validates and completes a config as it is typed when the
file starts with `# yaml-language-server: $schema=<path to config.schema.json>`. The schema says
what one field alone allows; the checks across fields and targets (dependencies, sizes, what AWS
accepts) are `esteira validate`'s. The committed copy is checked against the model by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from esteira.model import ProjectConfig

SCHEMA_FILE = Path(__file__).parent / "data" / "config.schema.json"
SCHEMA_ID = "https://esteira.dev/schemas/config.schema.json"


def config_schema() -> dict[str, Any]:
    schema = ProjectConfig.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "esteira project config (projects/<name>/config.yaml)",
        "description": "One ML pipeline, rendered for Airflow and AWS Step Functions by esteira. "
                       "`esteira validate` checks what a schema cannot (dependencies, sizes, AWS limits).",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    """Deterministic text: sorted keys, so the committed file only changes with the model."""
    return json.dumps(config_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
