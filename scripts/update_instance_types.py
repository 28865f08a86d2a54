"""Regenerate plugins/esteira/data/ec2_instance_types.json from moto's copy of EC2's DescribeInstanceTypes.

esteira checks a config's `ec2_type` (does it exist, does each step fit on it, is it x86_64) without
calling AWS, so it ships the three facts it needs per type. moto keeps a full DescribeInstanceTypes
dump up to date with AWS; this script reduces it. tests/test_ec2_types.py fails when the shipped file
and the pinned moto disagree: run `.venv/bin/python scripts/update_instance_types.py` then.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import moto

SOURCE = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
TARGET = Path(__file__).resolve().parents[1] / "plugins" / "esteira" / "data" / "ec2_instance_types.json"


def reduced() -> str:
    """{type: [vCPUs, memory MiB, [architectures]]}, sorted, one type per line."""
    types = json.loads(gzip.decompress(SOURCE.read_bytes()))
    rows = {name: [info["VCpuInfo"]["DefaultVCpus"], info["MemoryInfo"]["SizeInMiB"],
                   sorted(info["ProcessorInfo"]["SupportedArchitectures"])]
            for name, info in sorted(types.items())}
    lines = ",\n".join(f" {json.dumps(name)}: {json.dumps(row)}" for name, row in rows.items())
    return "{\n" + lines + "\n}\n"


if __name__ == "__main__":
    TARGET.write_text(reduced())
    print(f"wrote {TARGET} from {SOURCE} (moto {moto.__version__})", file=sys.stderr)
