"""The task sizes AWS Fargate accepts: a step's cpu/memory must be one of them (checked at load time).

Fargate refuses any other pair at RunTask time, hours into a pipeline; the table is AWS's
(Amazon ECS developer guide, "Task CPU and memory"), written out because no library ships it.
"""

from __future__ import annotations

# vCPU -> the memory sizes (GiB) allowed with it
FARGATE_SIZES: dict[float, tuple[float, ...]] = {
    0.25: (0.5, 1, 2),
    0.5: tuple(range(1, 5)),
    1: tuple(range(2, 9)),
    2: tuple(range(4, 17)),
    4: tuple(range(8, 31)),
    8: tuple(range(16, 61, 4)),
    16: tuple(range(32, 121, 8)),
}


def fargate_size_problem(cpu: float, memory_gb: float) -> str | None:
    """Why Fargate would refuse this size, with the valid choices, or None when it is valid."""
    if cpu not in FARGATE_SIZES:
        return (f"cpu {cpu:g} is not a Fargate size; valid vCPU values: "
                f"{', '.join(f'{c:g}' for c in FARGATE_SIZES)}")
    allowed = FARGATE_SIZES[cpu]
    if memory_gb not in allowed:
        return (f"memory_gb {memory_gb:g} is not valid with cpu {cpu:g} on Fargate; valid: "
                f"{_ranges(allowed)}")
    return None


def _ranges(values: tuple[float, ...]) -> str:
    if len(values) > 3:
        step = values[1] - values[0]
        return f"{values[0]:g} to {values[-1]:g} in steps of {step:g}"
    return ", ".join(f"{v:g}" for v in values)
