"""The EC2 instance-type table esteira ships is AWS's (through the pinned moto), and reads right."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conftest import REPO
from esteira.ec2_types import DATA, close_matches, lookup


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("update_instance_types", REPO / "scripts" / "update_instance_types.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_table_is_what_the_pinned_moto_gives() -> None:
    """When moto is upgraded: run scripts/update_instance_types.py and commit the file."""
    assert Path(DATA).read_text() == _script().reduced()


def test_facts_of_well_known_types() -> None:
    m5 = lookup("m5.xlarge")
    assert m5 is not None and (m5.vcpus, m5.memory_mib, m5.x86_64) == (4, 16384, True)
    graviton = lookup("m7g.large")
    assert graviton is not None and not graviton.x86_64
    assert lookup("t3.mega") is None
    assert "t3.xlarge" in close_matches("t3.xlargee")
