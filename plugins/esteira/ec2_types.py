"""EC2 instance types as ECS sees them: does a type exist, its vCPUs and memory, its architecture.

The table is AWS's own DescribeInstanceTypes (reduced by scripts/update_instance_types.py from the
copy moto keeps current), so a config is checked without an AWS call: a step that needs more than
its instance has would sit in PROVISIONING forever, hours into a run.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "ec2_instance_types.json"
# ECS registers less memory than the instance has (kernel, agent): m4.large's 8192 MiB registers
# as 7985 (AWS, "Reserving Amazon ECS Linux container instance memory"). A task is checked against
# this share, so a step that fits here fits there.
USABLE_MEMORY_SHARE = 0.95


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    architectures: tuple[str, ...]

    @property
    def cpu_units(self) -> int:
        return self.vcpus * 1024

    @property
    def usable_memory_mib(self) -> int:
        return int(self.memory_mib * USABLE_MEMORY_SHARE)

    @property
    def x86_64(self) -> bool:
        return "x86_64" in self.architectures


@cache
def _text() -> str:
    return DATA.read_text()


def lookup(name: str) -> InstanceType | None:
    """One type's row, found by a search of the file (one type a line) rather than a parse of all
    1,400: this runs in every parse of the DAG folder for every ec2 project."""
    row = re.search(rf'^ {re.escape(json.dumps(name))}: (\[.*\]),?$', _text(), re.MULTILINE)
    if row is None:
        return None
    vcpus, memory_mib, architectures = json.loads(row.group(1))
    return InstanceType(name, vcpus, memory_mib, tuple(architectures))


def close_matches(name: str) -> list[str]:
    """Suggestions for a name that is not a type (the error path: the whole table is read)."""
    return difflib.get_close_matches(name, list(json.loads(_text())), n=3, cutoff=0.75)
