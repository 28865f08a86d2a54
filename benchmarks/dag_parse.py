"""Airflow's parse of the DAG folder: the esteira factory against hand-written DAGs, same DAGs.

For each N, N churn-like projects (5 steps, a fan-out/fan-in, 1 topic-notified callback or 2) are
generated in a temp dir, and two DAG folders are parsed with Airflow's DagBag:

  factory  dags/esteira_dags.py (copied verbatim): build_all() over ESTEIRA_PROJECTS_DIR
  hand     a hand-written DAG file with the same N DAGs as Python literals, built directly with
           Airflow: EcsRunTaskOperator (ecs backend) or esteira's LocalProcessOperator (local)
           with the same arguments, and SnsNotifier callbacks

Both folders are first parsed once untimed, which writes the .pyc files a deployed processor also
has and proves that the two hold the same DAGs (ids, tasks, edges, every operator argument), else
the run stops. Every timed figure then comes from a fresh subprocess, the factory's and the hand
file's interleaved, median of --repeat runs, in CPU seconds by default (the machine may be shared).
Each subprocess replays what Airflow 3.3's DAG processor does for one parse of the folder:

  airflow  the processor's own imports (the manager has them before it forks parse children)
  scan     the manager reads the file's `import airflow.*` lines (ast) before EVERY parse of it
  pre      ...and imports those modules, once; the children inherit them. esteira_dags.py names
           the provider modules esteira builds with, so they are pre-imported; `esteira.*`
           itself (pydantic models, croniter) is not: the factory's children import it every parse
  parse    DagBag(dag_folder) in the child: imports what it does not have + runs the DAG file.
           This is the table's "seconds": paid on every parse (min_file_process_interval, 30 s)
  warm     a second DagBag in the same process: the DAG file's code alone, all modules loaded

With --profile (or automatically when the factory is more than 1.5x slower at the largest N) the
factory's parse is run under cProfile and the esteira functions it spends its time in are printed.

Usage: python benchmarks/dag_parse.py [--sizes 10 100 1000] [--repeat 3] [--backend ecs local]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
FACTORY_FILE = REPO / "dags" / "esteira_dags.py"
ENV = "dev"  # the AWS environment the ecs backend targets (ESTEIRA_ENV)
SLOW_RATIO = 1.5
AIRFLOW_IMPORT_TIMEOUT = 30.0  # [core] dagbag_import_timeout default: a slower file parse fails
IMPORTTIME_MARK = "esteira-bench: parse starts"
TIMEZONES = ("America/Sao_Paulo", "UTC", "Europe/Lisbon", "America/New_York")

# ---------------------------------------------------------------------------------------------
# The projects: one parameter set renders both the config.yaml and the hand-written DAG code.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    id: str
    name: str
    cpu: float
    memory_gb: float
    depends_on: tuple[str, ...] | None  # None: after the previous step (the config omits it)
    retries: int | None = None
    timeout: int | None = None
    env_vars: tuple[tuple[str, str], ...] = ()


STEPS = (
    Step("extract_features", "Extract Features", 1, 2, ()),
    Step("train_logreg", "Train Logistic Regression", 2, 4, ("extract_features",),
         env_vars=(("APP_MODEL_KIND", "logreg"),)),
    Step("train_gbm", "Train Gradient Boosting", 4, 8, ("extract_features",), retries=2, timeout=2700,
         env_vars=(("APP_MODEL_KIND", "gbm"),)),
    Step("select_best", "Select Best Model", 0.5, 1, ("train_logreg", "train_gbm")),
    Step("score", "Score Customers", 1, 2, None),
)
RETRIES, TIMEOUT, RETRY_DELAY = 1, 5400, 120


@dataclass(frozen=True)
class Spec:
    """One generated project (varied a little by index so no two configs are the same)."""

    index: int

    @property
    def name(self) -> str:
        return f"bench-{self.index:04d}"  # no "_": the CloudFormation stack name refuses it

    @property
    def version(self) -> str:
        return f"1.{self.index % 10}.0"

    @property
    def cron(self) -> str:
        return f"{self.index % 60} {3 + self.index % 4} * * MON-FRI"

    @property
    def timezone(self) -> str:
        return TIMEZONES[self.index % len(TIMEZONES)]

    @property
    def tech(self) -> str:
        return f"team{self.index % 7}@example.com"

    @property
    def business(self) -> str:
        return f"biz{self.index % 5}@example.com"

    @property
    def description(self) -> str:
        return (f"Benchmark project {self.index}: features, two candidate models trained in parallel, "
                "the better one selected, then the day's customers scored.")

    @property
    def env_vars(self) -> tuple[tuple[str, str], ...]:
        return (("APP_FEATURE_WINDOW_DAYS", str(30 + self.index % 90)), ("APP_COUNTRY", "br"))

    @property
    def on_success(self) -> bool:
        return self.index % 2 == 0

    def config_yaml(self) -> str:
        steps = []
        for s in STEPS:
            lines = [f"      - id: {s.id}", f'        name: "{s.name}"',
                     f'        command: ["python", "steps/run.py", "{s.id}"]']
            if s.depends_on is not None:
                lines.append(f"        depends_on: [{', '.join(s.depends_on)}]")
            if s.timeout is not None:
                lines.append(f"        timeout_seconds: {s.timeout}")
            if s.retries is not None:
                lines.append(f"        retries: {s.retries}")
            lines.append(f"        resources: {{cpu: {s.cpu:g}, memory_gb: {s.memory_gb:g}}}")
            if s.env_vars:
                lines.append("        env_vars:")
                lines += [f'          {k}: "{v}"' for k, v in s.env_vars]
            steps.append("\n".join(lines))
        success = '  on_success:\n    - "ml-team@example.com"\n' if self.on_success else ""
        env_vars = "\n".join(f'    {k}: "{v}"' for k, v in self.env_vars)
        steps_text = "\n\n".join(steps)
        return f"""# generated by benchmarks/dag_parse.py: churn-like, 5 steps with a fan-out/fan-in
project_name: {self.name}
description: "{self.description}"
version: "{self.version}"

owners:
  tech_owner: "{self.tech}"
  business_owner: "{self.business}"

schedule:
  enabled: true
  cron: "{self.cron}"
  timezone: "{self.timezone}"
  timeout_seconds: {TIMEOUT}
  retries: {RETRIES}
  retry_delay_seconds: {RETRY_DELAY}

runtime:
  python_version: "3.11"
  env_vars:
{env_vars}

batch:
  enabled: true
  orchestrator: "step_functions"
  pipeline:
    steps:
{steps_text}

infra:
  compute:
    provider: "ec2"
    ec2_type: "m5.xlarge"
    min_quantity: 0
    max_quantity: 3
    spot: true

notifications:
{success}  on_failure:
    - "ml-team@example.com"
    - "oncall@example.com"
"""


# ---------------------------------------------------------------------------------------------
# The hand-written DAG file: what a platform team would type, one `with DAG(...)` per project.
# ---------------------------------------------------------------------------------------------

HAND_HEADER = '''"""Hand-written DAGs (generated by benchmarks/dag_parse.py as a baseline): no esteira, no YAML."""

import functools
import logging
from datetime import UTC, timedelta

import pendulum
from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator
from airflow.sdk import DAG, CronTriggerTimetable
{local_import}

def esteira_run_date(dag_run):
    when = getattr(dag_run, "logical_date", None) or dag_run.run_after
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_notification(subject, context):
    logging.getLogger("esteira").info("notification (local): %s %s", subject, context["dag_run"].run_id)


MACROS = {{"esteira_run_date": esteira_run_date}}
NETWORK = {network!r}
'''


class Hand:
    """Renders the hand-written DAG code of one project for one backend."""

    def __init__(self, spec: Spec, backend: str, projects_dir: Path, envs: dict[str, Any]) -> None:
        self.s, self.backend, self.projects_dir, self.envs = spec, backend, projects_dir, envs
        self.aws = envs[ENV]
        self.env = ENV if backend == "ecs" else "local"

    def platform_env(self) -> list[tuple[str, str]]:
        if self.backend == "ecs":
            uri, root = self.aws["mlflow"]["tracking_uri"], self.aws["data_root"]
        else:
            home = (self.projects_dir / self.envs.get("local", {}).get("home", "../.esteira")).resolve()
            uri, root = f"sqlite:///{home / 'mlflow.db'}", str(home / "data")
        out = [("ENV", self.env), ("MLFLOW_TRACKING_URI", uri), ("MLFLOW_EXPERIMENT_NAME", self.s.name),
               ("DATA_ROOT", root), ("RUN_DATE", "{{ esteira_run_date(dag_run) }}"),
               ("RUN_ID", "{{ dag_run.run_id }}")]
        if self.backend == "ecs" and self.aws["mlflow"].get("s3_endpoint_url"):
            out.append(("MLFLOW_S3_ENDPOINT_URL", self.aws["mlflow"]["s3_endpoint_url"]))
        return out

    def env_of(self, step: Step) -> dict[str, str]:
        return {**dict(self.s.env_vars), **dict(step.env_vars), **dict(self.platform_env())}

    def upstream(self, index: int) -> tuple[str, ...]:
        step = STEPS[index]
        if step.depends_on is not None:
            return step.depends_on
        return (STEPS[index - 1].id,) if index else ()

    def doc_md(self) -> str:
        s = self.s
        rows = "\n".join(
            f"| `{st.id}` | {st.name} | `python steps/run.py {st.id}` | {', '.join(self.upstream(i)) or '-'} | "
            f"{st.cpu:g} vCPU, {st.memory_gb:g} GiB | {st.retries if st.retries is not None else RETRIES} | "
            f"{st.timeout or TIMEOUT}s |"
            for i, st in enumerate(STEPS))
        return f"""{s.description}

**Project** `{s.name}` version `{s.version}` · **target** `{self.env}` ·
**schedule** `{s.cron}` ({s.timezone}) · **owners** {s.tech} (tech), {s.business} (business)

| step | name | command | after | resources | retries | timeout |
|---|---|---|---|---|---|---|
{rows}

Generated by esteira from `{self.projects_dir / s.name / 'config.yaml'}`; edit that file, not this DAG.
"""

    def callback(self, status: str) -> str:
        subject = f"[esteira] {self.s.name} ({self.env}) {status}"
        if self.backend != "ecs":
            return f"functools.partial(log_notification, {subject!r})"
        message = json.dumps({"project": self.s.name, "env": self.env, "status": status,
                              "run_date": "{{ esteira_run_date(dag_run) }}", "run_id": "{{ dag_run.run_id }}"},
                             separators=(",", ":"))
        arn = f"arn:aws:sns:{self.aws['region']}:{self.aws['account_id']}:{self.s.name}-notifications"
        return (f"SnsNotifier(aws_conn_id={self.aws['aws_conn_id']!r}, region_name={self.aws['region']!r}, "
                f"target_arn={arn!r}, subject={subject!r}, message={message!r})")

    def task(self, step: Step) -> str:
        s = self.s
        cpu, mem = round(step.cpu * 1024), round(step.memory_gb * 1024)
        common = (f"task_id={step.id!r}, task_display_name={step.name!r}, "
                  f"retries={step.retries if step.retries is not None else RETRIES}, "
                  f"retry_delay=timedelta(seconds={RETRY_DELAY}), "
                  f"execution_timeout=timedelta(seconds={step.timeout or TIMEOUT}),")
        command = ["python", "steps/run.py", step.id]
        if self.backend != "ecs":
            return (f"    {step.id} = LocalProcessOperator(\n        {common}\n"
                    f"        command={command!r},\n        env={self.env_of(step)!r},\n"
                    f"        cwd={str(self.projects_dir / s.name)!r},\n    )\n")
        overrides = {"containerOverrides": [{
            "name": s.name, "command": command,
            "environment": [{"name": k, "value": v} for k, v in self.env_of(step).items()],
            "cpu": cpu, "memory": mem}], "cpu": str(cpu), "memory": str(mem)}
        tags = {"esteira:project": s.name, "esteira:step": step.id, "esteira:env": self.env}
        region = self.aws["region"]
        return f"""    {step.id} = EcsRunTaskOperator(
        {common}
        cluster="ml-cluster-{s.name}",
        task_definition="{s.name}",
        overrides={overrides!r},
        capacity_provider_strategy=[{{"capacityProvider": "cp-{s.name}", "weight": 1, "base": 0}}],
        network_configuration=NETWORK,
        propagate_tags="TASK_DEFINITION",
        tags={tags!r},
        awslogs_group="/ecs/{s.name}",
        awslogs_region="{region}",
        awslogs_stream_prefix="ecs/{s.name}",
        container_name="{s.name}",
        reattach=True,
        aws_conn_id="{self.aws['aws_conn_id']}",
        region_name="{region}",
    )
"""

    def code(self) -> str:
        s = self.s
        callbacks = f"    on_failure_callback={self.callback('FAILED')},\n"
        if s.on_success:
            callbacks += f"    on_success_callback={self.callback('SUCCEEDED')},\n"
        paused = "True" if self.backend == "ecs" else "None"
        tags = ["esteira", f"project:{s.name}", f"version:{s.version}", "orchestrator:step_functions",
                f"env:{self.env}"]
        edges = "\n".join(f"    {up} >> {st.id}" for i, st in enumerate(STEPS) for up in self.upstream(i))
        return f"""

with DAG(
    dag_id="{s.name}",
    description={s.description!r},
    doc_md={self.doc_md()!r},
    schedule=CronTriggerTimetable("{s.cron}", timezone="{s.timezone}"),
    start_date=pendulum.datetime(2024, 1, 1, tz="{s.timezone}"),
    catchup=False,
    dagrun_timeout=timedelta(seconds={TIMEOUT}),
    tags={tags!r},
    owner_links={{"{s.tech}": "mailto:{s.tech}"}},
    user_defined_macros=MACROS,
    is_paused_upon_creation={paused},
    default_args={{"owner": "{s.tech}"}},
{callbacks}) as dag_{s.name.replace("-", "_")}:
{"".join(self.task(st) for st in STEPS)}
{edges}
"""


def hand_header(backend: str, envs: dict[str, Any]) -> str:
    aws = envs[ENV]["network"]
    network = {"awsvpcConfiguration": {
        "subnets": list(aws["subnets"]), "securityGroups": list(aws["security_groups"]),
        "assignPublicIp": "ENABLED" if aws.get("assign_public_ip") else "DISABLED"}}
    local = "from esteira.airflow.local_operator import LocalProcessOperator\n" if backend == "local" else ""
    return HAND_HEADER.format(local_import=local, network=network)


@dataclass(frozen=True)
class Case:
    backend: str
    size: int
    projects: Path
    factory: Path  # DAG folder holding a copy of dags/esteira_dags.py
    hand: Path  # DAG folder holding the hand-written file(s)


def make_case(root: Path, backend: str, size: int, layout: str) -> Case:
    projects = root / f"projects_{size}"
    if not projects.exists():
        projects.mkdir()
        shutil.copy(REPO / "projects" / "environments.yaml", projects / "environments.yaml")
        for i in range(size):
            spec = Spec(i)
            (projects / spec.name).mkdir()
            (projects / spec.name / "config.yaml").write_text(spec.config_yaml())
    envs = yaml.safe_load((projects / "environments.yaml").read_text())
    factory = root / f"factory_{backend}_{size}"
    factory.mkdir()
    shutil.copy(FACTORY_FILE, factory / FACTORY_FILE.name)
    hand = root / f"hand_{backend}_{size}"
    hand.mkdir()
    header = hand_header(backend, envs)
    blocks = [Hand(Spec(i), backend, projects, envs).code() for i in range(size)]
    if layout == "single":
        (hand / "hand_dags.py").write_text(header + "".join(blocks))
    else:
        for i, block in enumerate(blocks):
            (hand / f"hand_{Spec(i).name.replace('-', '_')}.py").write_text(header + block)
    return Case(backend, size, projects, factory, hand)


# ---------------------------------------------------------------------------------------------
# The worker: one fresh interpreter per measurement, as a DAG processor child sees a parse.
# ---------------------------------------------------------------------------------------------


def fingerprint(dags: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything that makes two DAGs the same DAG (callback objects compared by their target)."""

    def target(cb: Any) -> Any:
        if cb is None:
            return None
        return getattr(cb, "topic_arn", None) or getattr(cb, "target_arn", None) or "log"

    attrs = ("task_display_name", "retries", "retry_delay", "execution_timeout", "owner", "cluster",
             "task_definition", "overrides", "capacity_provider_strategy", "network_configuration",
             "propagate_tags", "tags", "awslogs_group", "awslogs_region", "awslogs_stream_prefix",
             "container_name", "reattach", "aws_conn_id", "region_name", "command", "env", "cwd")
    out = []
    for dag_id in sorted(dags):
        dag = dags[dag_id]
        tt = dag.timetable
        out.append({
            "dag_id": dag_id, "description": dag.description, "doc_md": dag.doc_md,
            "timetable": [type(tt).__name__, getattr(tt, "expression", None), str(getattr(tt, "timezone", ""))],
            "start_date": dag.start_date.isoformat(), "catchup": dag.catchup,
            "dagrun_timeout": str(dag.dagrun_timeout), "tags": sorted(dag.tags), "owner_links": dag.owner_links,
            "default_args": {k: str(v) for k, v in dag.default_args.items()},
            "paused": dag.is_paused_upon_creation, "macros": sorted(dag.user_defined_macros or {}),
            "on_success": target(dag.on_success_callback), "on_failure": target(dag.on_failure_callback),
            "tasks": [{"task_id": t.task_id, "type": type(t).__name__, "upstream": sorted(t.upstream_task_ids),
                       **{a: repr(getattr(t, a)) for a in attrs if hasattr(t, a)}} for t in dag.tasks],
        })
    return out


def _rss_mb() -> float:
    """Current resident memory (Linux), to tell what a parse keeps, not the peak of the set-up."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(folder: str, expect: int, fingerprint_file: str | None, profile: bool) -> None:
    """Times one parse the way Airflow 3.3's DAG processor does it; prints one JSON line."""
    import importlib

    marks = [(time.perf_counter(), time.process_time())]

    def mark() -> None:
        marks.append((time.perf_counter(), time.process_time()))

    # What the DAG processor manager has loaded before it forks a parse child (pydantic, yaml,
    # pendulum, croniter, airflow.sdk come with it; the amazon provider's operators do not).
    import airflow.dag_processing.manager
    import airflow.dag_processing.processor  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.file import iter_airflow_imports

    mark()
    files = sorted(str(p) for p in Path(folder).glob("*.py"))
    modules = {m for f in files for m in iter_airflow_imports(f)}  # the manager does this before each parse
    mark()
    for module in sorted(modules):  # ... and imports them once; parse children are forked from it
        importlib.import_module(module)
    mark()
    rss_before = _rss_mb()
    profiler = cProfile.Profile(time.process_time) if profile else None
    print(IMPORTTIME_MARK, file=sys.stderr, flush=True)  # -X importtime lines after this are the parse's
    if profiler:
        profiler.enable()
    bag = DagBag(dag_folder=folder)
    if profiler:
        profiler.disable()
    mark()
    rss_after = _rss_mb()
    if bag.import_errors or len(bag.dags) != expect:
        raise SystemExit(f"{folder}: {len(bag.dags)} DAGs of {expect}; import errors: {bag.import_errors}")
    warm = DagBag(dag_folder=folder)
    mark()
    assert len(warm.dags) == expect
    phases = ("airflow", "scan", "pre", "parse", "warm")
    result: dict[str, Any] = {
        clock: {ph: marks[i + 1][c] - marks[i][c] for i, ph in enumerate(phases)}
        for c, clock in enumerate(("wall", "cpu"))}
    result["parse_mb"] = rss_after - rss_before
    if fingerprint_file:
        text = json.dumps(fingerprint(bag.dags), sort_keys=True, default=str)
        Path(fingerprint_file).write_text(text)
        result["fingerprint"] = hashlib.sha256(text.encode()).hexdigest()
    if profiler:
        result["profile"] = profile_report(profiler) + "\n" + stage_times()
    print(json.dumps(result))


def profile_report(profiler: cProfile.Profile) -> str:
    """Where a factory parse goes (CPU time): imports, then esteira's functions by cumulative time."""
    stats = pstats.Stats(profiler)
    rows = stats.stats  # type: ignore[attr-defined]  # {(file, line, func): (cc, nc, tt, ct, callers)}
    total = stats.total_tt  # type: ignore[attr-defined]

    def cum(pred: Any) -> float:
        return max((v[3] for k, v in rows.items() if pred(k)), default=0.0)

    lines = [f"factory parse under cProfile: {total:.2f} cpu s (profiling adds overhead; read the shares)"]
    imports = cum(lambda k: k[2] == "_find_and_load")
    lines.append(f"  {'imports of modules the child does not have yet (see the import tree)':<66} {imports:7.2f} "
                 f"{100 * imports / total:5.1f}%")
    plugins = str(REPO / "plugins" / "esteira")
    esteira = sorted(((v[3], v[2], v[1], k) for k, v in rows.items() if k[0].startswith(plugins)), reverse=True)
    lines.append(f"  esteira functions by cumulative time ({'cum s':>7} {'%':>5} {'own s':>6} {'calls':>7}):")
    for ct, tt, nc, (file, line, func) in esteira[:24]:
        where = f"{Path(file).relative_to(plugins).with_suffix('')}.{func}:{line}".replace("/", ".")
        lines.append(f"    {where:<62} {ct:7.2f} {100 * ct / total:5.1f} {tt:6.2f} {nc:7d}")
    lines.append("  everything, by own time (top 15):")
    others = sorted(((v[2], v[1], k) for k, v in rows.items()), reverse=True)
    for tt, nc, (file, line, func) in others[:15]:
        short = "/".join(Path(file).parts[-3:]) + f":{line}" if file.startswith("/") else file
        lines.append(f"    {short + ' ' + func:<62} {tt:7.2f} {100 * tt / total:5.1f} {nc:7d}")
    return "\n".join(lines)


def stage_times(rounds: int = 3) -> str:
    """The factory's stages timed without a profiler (CPU s, best of `rounds`, modules already loaded)."""
    from esteira.airflow.dag_builder import build_dag
    from esteira.discovery import discover, project_files
    from esteira.environments import load_environments
    from esteira.plan import Target, build_plan
    from esteira.settings import Settings
    from esteira.yaml_source import load_yaml

    settings = Settings.from_environ()
    best: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        start = time.process_time()
        out = fn()
        best[name] = min(best.get(name, float("inf")), time.process_time() - start)
        return out

    for _ in range(rounds):
        timed("esteira.yaml_source.load_yaml (PyYAML C parser + line-tracking conversion)",
              lambda: [load_yaml(f) for f in project_files(settings.projects_dir)])
        projects = timed("esteira.discovery.discover (= load_yaml + pydantic model + config checks)",
                         lambda: discover(settings.projects_dir))
        envs = load_environments(settings.environments_file)
        target = Target.local(envs) if settings.backend == "local" else Target.aws_env(envs, settings.env)
        specs = timed("esteira.plan.build_plan (every project)",
                      lambda projects=projects, target=target: [build_plan(p, target) for p in projects])
        timed("esteira.airflow.dag_builder.build_dag (DAG + operators: Airflow's own cost, mostly)",
              lambda specs=specs: [build_dag(spec) for spec in specs])
    n = len(projects)
    lines = [f"  factory stages without a profiler (cpu s, best of {rounds}; {n} projects):"]
    lines += [f"    {name:<84} {sec:6.3f} {1000 * sec / n:6.2f} ms/proj" for name, sec in best.items()]
    return "\n".join(lines)


def import_tree(stderr: str, share: float = 0.05, levels: int = 4) -> str:
    """The -X importtime lines printed during the parse: modules costing >= share of the parse's imports."""
    lines = stderr.split(IMPORTTIME_MARK, 1)[-1].splitlines()
    rows = []
    for line in lines:
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        own_us, cum_us, name = int(parts[0].split(":")[1]), int(parts[1]), parts[2].rstrip()
        rows.append((own_us, cum_us, name))
    if not rows:
        return "  (no imports during the parse)"
    depth = min(len(n) - len(n.lstrip()) for _, _, n in rows)
    total = sum(c for _, c, n in rows if len(n) - len(n.lstrip()) == depth)
    out = [f"  imports during the factory's parse (-X importtime, wall): {total / 1e6:.2f} s in total; "
           f"modules >= {share:.0%}, {levels} levels, nested as imported (cum s, own s)"]
    for own_us, cum_us, name in reversed(rows):  # importtime prints a module after its children
        if cum_us >= share * total and (len(name) - len(name.lstrip()) - depth) // 2 < levels:
            out.append(f"    {name[depth:]:<70} {cum_us / 1e6:6.2f} {own_us / 1e6:6.2f}")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The driver.
# ---------------------------------------------------------------------------------------------


def run_worker(case: Case, variant: str, root: Path, *, fingerprint_file: Path | None = None,
               profile: bool = False, importtime: bool = False) -> dict[str, Any]:
    folder = case.factory if variant == "factory" else case.hand
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESTEIRA_", "AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(root / "airflow_home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "3600",  # measure past the default 30 s; flagged below
        "ESTEIRA_PROJECTS_DIR": str(case.projects),
        "ESTEIRA_BACKEND": case.backend,
        "ESTEIRA_ENV": ENV,
    })
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), __file__,
            "--worker", str(folder), "--expect", str(case.size)]
    if fingerprint_file:
        argv += ["--fingerprint", str(fingerprint_file)]
    if profile:
        argv.append("--profile-worker")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({variant}, {case.backend}, N={case.size}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr if importtime else ""
    return result


def first_difference(a: Path, b: Path) -> str:
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    for x, y in zip(left, right, strict=False):
        if x != y:
            keys = sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k))
            detail = {k: (x.get(k), y.get(k)) for k in keys if k != "tasks"}
            if "tasks" in keys:
                for tx, ty in zip(x["tasks"], y["tasks"], strict=False):
                    if tx != ty:
                        detail["task " + tx["task_id"]] = {k: (tx.get(k), ty.get(k)) for k in tx.keys() | ty.keys()
                                                           if tx.get(k) != ty.get(k)}
                        break
            return f"DAG {x['dag_id']}: " + json.dumps(detail, indent=1, default=str)[:3000]
    return f"{len(left)} DAGs against {len(right)}"


Runs = dict[str, list[dict[str, Any]]]  # variant ("factory", "hand") -> one result per fresh process


def median(runs: list[dict[str, Any]], phase: str, clock: str) -> float:
    return statistics.median(r[clock][phase] for r in runs)


def measure(case: Case, repeat: int, root: Path, check: bool) -> Runs:
    fps = {v: root / f"fp_{v}_{case.backend}_{case.size}.json" for v in ("factory", "hand")}
    warmup = {v: run_worker(case, v, root, fingerprint_file=fps[v] if check else None) for v in fps}
    if check and warmup["factory"]["fingerprint"] != warmup["hand"]["fingerprint"]:
        raise SystemExit(f"the hand-written DAGs differ from the factory's ({case.backend}, N={case.size}); "
                         f"the comparison would be unfair:\n{first_difference(fps['factory'], fps['hand'])}")
    runs: Runs = {"factory": [], "hand": []}
    for _ in range(repeat):
        for variant in ("factory", "hand"):  # interleaved, so drift hits both alike
            runs[variant].append(run_worker(case, variant, root))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], metavar="N",
                    help="numbers of generated projects (default: 10 100 1000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed fresh-process parses per size and variant; the median is shown (default 3)")
    ap.add_argument("--backend", nargs="+", choices=("ecs", "local"), default=["ecs"],
                    help="ESTEIRA_BACKEND(s) to measure (default: ecs, the one MWAA runs)")
    ap.add_argument("--hand-layout", choices=("single", "per-dag"), default="single",
                    help="hand-written DAGs in one file (default: no per-file cost in the child) or one file each")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: the process's CPU time (default; steady when other work shares the machine), "
                         "wall: elapsed time")
    ap.add_argument("--profile", action="store_true",
                    help="profile the factory's parse at the largest size even if it is not slow")
    ap.add_argument("--no-check", action="store_true",
                    help="skip proving that the hand-written DAGs equal the factory's")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (projects, DAG folders) and print it")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--fingerprint", help=argparse.SUPPRESS)
    ap.add_argument("--profile-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.expect, args.fingerprint, args.profile_worker)
        return
    if args.repeat < 1 or any(n < 1 for n in args.sizes):
        ap.error("--repeat and --sizes must be at least 1")

    root = Path(tempfile.mkdtemp(prefix="esteira-bench-"))
    started = time.perf_counter()
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
              f"{args.clock} seconds, median of {args.repeat} fresh processes; hand layout={args.hand_layout}, "
              f"ESTEIRA_ENV={ENV}", flush=True)
        print("seconds = one parse of the DAG folder by a DAG-processor child (DagBag, airflow.* imports of the "
              "file pre-imported)", flush=True)
        results = []
        for backend in args.backend:
            for size in sorted(args.sizes):
                case = make_case(root, backend, size, args.hand_layout)
                runs = measure(case, args.repeat, root, not args.no_check)
                results.append((case, runs))
                report_row(case, runs, args.clock, header=len(results) == 1)
        print()
        report_breakdown(results, args.clock)
        report_profile(results, args, root)
        checked = "" if args.no_check else "; the hand-written DAGs were checked equal to the factory's"
        print(f"\n(total {time.perf_counter() - started:.0f} s wall{checked})")
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def report_row(case: Case, runs: Runs, clock: str, header: bool) -> None:
    if header:
        print(f"{'backend':<7} {'N':>5} {'factory s':>10} {'hand s':>8} {'ratio':>6} "
              f"{'factory ms/proj':>15} {'hand ms/proj':>12} {'warm ratio':>10}")
    f, h = median(runs["factory"], "parse", clock), median(runs["hand"], "parse", clock)
    fw, hw = median(runs["factory"], "warm", clock), median(runs["hand"], "warm", clock)
    wall = median(runs["factory"], "parse", "wall")
    flag = f"  factory wall {wall:.1f} s > dagbag_import_timeout (30 s)" if wall > AIRFLOW_IMPORT_TIMEOUT else ""
    print(f"{case.backend:<7} {case.size:>5} {f:>10.3f} {h:>8.3f} {f / h:>6.2f} "
          f"{1000 * f / case.size:>15.2f} {1000 * h / case.size:>12.2f} {fw / hw:>10.2f}{flag}", flush=True)


def report_breakdown(results: list[tuple[Case, Runs]], clock: str) -> None:
    print(f"breakdown ({clock} s, medians):\n"
          "  airflow  the DAG processor's own imports (paid once per processor, not per parse)\n"
          "  scan     the manager reads the file's airflow.* imports (ast) before EVERY parse of it\n"
          "  pre      ...and imports them, once; children inherit them\n"
          "  parse    DagBag in the child = the 'seconds' above (imports esteira & co. + runs the DAG file)\n"
          "  warm     a second DagBag in the same process: the DAG file's code alone\n"
          "  +MB      resident memory the parse added (modules + DAGs)")
    print(f"{'backend':<7} {'N':>5} {'variant':<8} {'airflow':>8} {'scan':>7} {'pre':>7} {'parse':>8} "
          f"{'warm':>8} {'warm ms/proj':>12} {'+MB':>6}")
    for case, runs in results:
        for variant in ("factory", "hand"):
            r = runs[variant]
            print(f"{case.backend:<7} {case.size:>5} {variant:<8} {median(r, 'airflow', clock):>8.3f} "
                  f"{median(r, 'scan', clock):>7.3f} {median(r, 'pre', clock):>7.3f} "
                  f"{median(r, 'parse', clock):>8.3f} {median(r, 'warm', clock):>8.3f} "
                  f"{1000 * median(r, 'warm', clock) / case.size:>12.2f} "
                  f"{statistics.median(x['parse_mb'] for x in r):>6.0f}")


def report_profile(results: list[tuple[Case, Runs]], args: argparse.Namespace, root: Path) -> None:
    """Profile the factory at the largest size when it is too slow (or when asked)."""
    for backend in args.backend:
        case, runs = max(((c, r) for c, r in results if c.backend == backend), key=lambda cr: cr[0].size)
        ratio = median(runs["factory"], "parse", args.clock) / median(runs["hand"], "parse", args.clock)
        if not args.profile and ratio <= SLOW_RATIO:
            continue
        why = "asked with --profile" if ratio <= SLOW_RATIO else f"factory {ratio:.2f}x the hand-written DAGs"
        print(f"\nprofile ({backend}, N={case.size}; {why}):")
        print(run_worker(case, "factory", root, profile=True)["profile"])
        print(import_tree(run_worker(case, "factory", root, importtime=True)["stderr"]))


if __name__ == "__main__":
    main()
