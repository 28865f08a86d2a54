"""Load projects/<name>/config.yaml into a validated Project: model + graph + where it came from.

Checks that span fields live here and are all reported together, each with its line.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from esteira.ec2_types import InstanceType, close_matches, lookup
from esteira.errors import ConfigError, Problem
from esteira.fargate import fargate_size_problem
from esteira.graph import CycleError, Graph
from esteira.model import ProjectConfig, Step
from esteira.naming import ProjectNames, name_problems
from esteira.s3_trigger import MAX_KEY_BYTES
from esteira.validation import validate_document
from esteira.yaml_source import YamlDocument, load_yaml

CONFIG_FILE = "config.yaml"
# Dates every consumer can hold in any time zone: datetime overflows near years 1 and 9999 once a
# zone's offset is applied (Airflow's DAG, EventBridge's StartDate), and nothing runs before 1970.
START_DATE_RANGE = (dt.date(1970, 1, 1), dt.date(2999, 12, 31))
_STEPS = ("batch", "pipeline", "steps")


@dataclass(frozen=True)
class Project:
    config: ProjectConfig
    graph: Graph
    source: Path
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict, compare=False, repr=False)

    def line_for(self, path: tuple[str | int, ...]) -> int | None:
        """Line of a field path in config.yaml (or its nearest ancestor), for later errors."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)

    @property
    def name(self) -> str:
        return self.config.project_name

    @property
    def directory(self) -> Path:
        return self.source.parent

    @cached_property
    def names(self) -> ProjectNames:
        return ProjectNames(self.config.project_name, self.config.version)

    @cached_property
    def steps(self) -> dict[str, Step]:
        return {step.id: step for step in self.config.batch.pipeline.steps}

    def retries(self, step: Step) -> int:
        return self.config.schedule.retries if step.retries is None else step.retries

    def infra_retries(self, step: Step) -> int:
        return self.config.schedule.infra_retries if step.infra_retries is None else step.infra_retries

    def timeout_seconds(self, step: Step) -> int:
        """A step may not outlive its run: without its own timeout it gets the run's."""
        sched = self.config.schedule
        return sched.timeout_seconds if step.timeout_seconds is None else step.timeout_seconds


def effective_dependencies(steps: tuple[Step, ...]) -> dict[str, tuple[str, ...]]:
    """depends_on omitted means "after the previous step in the list" (the seed's pipelines)."""
    deps: dict[str, tuple[str, ...]] = {}
    for i, step in enumerate(steps):
        if step.depends_on is not None:
            deps[step.id] = step.depends_on
        else:
            deps[step.id] = (steps[i - 1].id,) if i else ()
    return deps


def load_project(config_file: Path, raw: bytes | None = None) -> Project:
    """Parse, validate and cross-check one project (`raw`: the file's bytes, already read); raises
    ConfigError listing every problem."""
    config_file = Path(config_file)
    doc = load_yaml(config_file, raw)
    config = validate_document(ProjectConfig, doc)
    problems = _cross_check(config, doc)
    graph = None
    if not problems:
        try:
            graph = Graph.from_dependencies(effective_dependencies(config.batch.pipeline.steps))
        except CycleError as exc:
            ids = [s.id for s in config.batch.pipeline.steps]
            path = (*_STEPS, ids.index(exc.cycle[0]), "depends_on")
            problems.append(Problem(
                f"dependency cycle: {' -> '.join(exc.cycle)} (each step depends on the next); "
                "remove one of these dependencies", path, doc.line_for(path)))
    if problems:
        raise ConfigError(config_file, problems)
    assert graph is not None
    return Project(config=config, graph=graph, source=config_file, lines=doc.lines)


def _instance_type(name: str | None, add: Callable[..., None]) -> InstanceType | None:
    """The ec2_type's facts, or None after reporting why it cannot be used."""
    if name is None:
        return None
    instance = lookup(name)
    if instance is None:
        close = close_matches(name)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (e.g. m5.xlarge, c6i.2xlarge, r6i.large)"
        add(f"{name!r} is not an EC2 instance type{hint}", "infra", "compute", "ec2_type")
        return None
    if not instance.x86_64:
        add(f"{name} is an {'/'.join(instance.architectures)} (Graviton) type, but the cluster's AMI and the "
            "image esteira builds are x86_64; choose an x86_64 type (e.g. m6i instead of m6g)",
            "infra", "compute", "ec2_type")
        return None
    return instance


def _fit_problems(step: Step, instance: InstanceType) -> list[str]:
    """Why ECS could never place this step on one instance of the type."""
    out = []
    cpu_units = math.ceil(step.resources.cpu * 1024)
    memory_mib = math.ceil(step.resources.memory_gb * 1024)
    if cpu_units > instance.cpu_units:
        out.append(f"cpu {step.resources.cpu:g} is more than a {instance.name} has ({instance.vcpus} vCPU): "
                   "ECS could never place the task; use a larger ec2_type or less cpu")
    if memory_mib > instance.usable_memory_mib:
        out.append(f"memory_gb {step.resources.memory_gb:g} is more than ECS can give a task on a {instance.name} "
                   f"(about {instance.usable_memory_mib / 1024:.2f} of its {instance.memory_mib / 1024:g} GiB; the "
                   "rest is the system's): use a larger ec2_type or less memory")
    return out


def _cross_check(config: ProjectConfig, doc: YamlDocument) -> list[Problem]:
    problems: list[Problem] = []

    def add(message: str, *path: str | int) -> None:
        problems.append(Problem(message, tuple(path), doc.line_for(tuple(path))))

    folder = doc.file.parent.name
    if folder != config.project_name:
        add(f"project_name {config.project_name!r} differs from its folder {folder!r}; "
            f"they must be equal (rename the folder or set project_name: {folder}) so that "
            "two folders can never deploy to the same state machine", "project_name")
    for name_field, message in name_problems(config.project_name, config.version):
        add(message, name_field)

    sched = config.schedule
    if sched.start_date is not None and not START_DATE_RANGE[0] <= sched.start_date <= START_DATE_RANGE[1]:
        add(f"start_date {sched.start_date} is out of range; use a date from {START_DATE_RANGE[0]} to "
            f"{START_DATE_RANGE[1]} (the first run's date, in schedule.timezone)", "schedule", "start_date")
    if sched.catchup and sched.start_date is None:
        add("catchup: true needs a start_date to catch up from (e.g. start_date: 2026-01-01)",
            "schedule", "catchup")
    compute = config.infra.compute
    instance = None
    if compute.provider == "ec2":
        for name in ("ec2_type", "min_quantity", "max_quantity"):
            if getattr(compute, name) is None:
                add("required with provider ec2 (the instances of the project's auto scaling group)",
                    "infra", "compute", name)
        instance = _instance_type(compute.ec2_type, add)
        if (compute.min_quantity is not None and compute.max_quantity is not None
                and compute.min_quantity > compute.max_quantity):
            add(f"min_quantity ({compute.min_quantity}) is greater than max_quantity "
                f"({compute.max_quantity})", "infra", "compute", "min_quantity")
    else:
        for name in ("ec2_type", "min_quantity", "max_quantity"):
            if getattr(compute, name) is not None:
                add(f"{name} has no meaning with provider fargate (AWS runs each task on its own); "
                    "remove it, or use provider: ec2", "infra", "compute", name)
    if config.trigger is not None:
        s3 = config.trigger.s3
        key_bytes = len(s3.prefix.encode()) + len(s3.suffix.encode())
        if key_bytes > MAX_KEY_BYTES:
            add(f"prefix and suffix take {key_bytes} bytes together; an S3 key is at most {MAX_KEY_BYTES}, so no "
                "object could ever match", "trigger", "s3", "suffix")
    runtime = config.runtime
    for name in runtime.secrets:
        if name in runtime.env_vars:
            add(f"{name} is both a secret and a plain env_var; keep only the secret",
                "runtime", "secrets", name)

    steps = config.batch.pipeline.steps
    first_index: dict[str, int] = {}
    folded: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.id in first_index:
            add(f"duplicate step id {step.id!r} (also steps[{first_index[step.id]}]); "
                "step ids must be unique", *_STEPS, i, "id")
            continue
        first_index[step.id] = i
        other = folded.setdefault(step.id.casefold(), i)
        if other != i:
            add(f"step id {step.id!r} differs from steps[{other}]'s {steps[other].id!r} only in case; Airflow "
                "keeps a folder per task, and on a case-insensitive disk (macOS) the two would share one",
                *_STEPS, i, "id")
    valid = ", ".join(first_index)
    for i, step in enumerate(steps):
        if compute.provider == "fargate":
            size = fargate_size_problem(step.resources.cpu, step.resources.memory_gb)
            if size:
                add(size, *_STEPS, i, "resources")
        elif instance is not None:
            for message in _fit_problems(step, instance):
                add(message, *_STEPS, i, "resources")
        if step.timeout_seconds is not None and step.timeout_seconds > sched.timeout_seconds:
            add(f"timeout_seconds ({step.timeout_seconds}) exceeds the whole run's "
                f"schedule.timeout_seconds ({sched.timeout_seconds})",
                *_STEPS, i, "timeout_seconds")
        for j, dep in enumerate(step.depends_on or ()):
            if dep == step.id:
                add(f"step {step.id!r} depends on itself", *_STEPS, i, "depends_on", j)
            elif dep not in first_index:
                add(f"unknown step {dep!r}; valid step ids: {valid}",
                    *_STEPS, i, "depends_on", j)
            elif dep in (step.depends_on or ())[:j]:
                add(f"{dep!r} is listed twice", *_STEPS, i, "depends_on", j)
    return problems
