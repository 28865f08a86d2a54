"""What Airflow adds to a local end-to-end run: a project's steps run directly vs `airflow dags test`.

Both modes run the same argv, in the same folder, with the same environment (esteira's run spec
for the local target, on the local operator's clean base), each on a fresh local home (MLflow
sqlite file + data) in a temp dir, so both pay the same first-run costs (MLflow's database
creation included); the repo's .esteira/ is never touched.

  direct   each step as a subprocess, one after another in dependency order
  airflow  `airflow dags test <project> <date>`: Airflow's start, DAG parse and serialisation,
           then the same steps through esteira's LocalProcessOperator

Modes are interleaved (direct, airflow, direct, ...) and the median of --repeat runs is printed,
in wall seconds and CPU seconds (this process's children: steps, Airflow and what it starts). CPU
is the steadier figure on a shared machine. The Airflow metadata DB is migrated once, untimed.

Usage: python benchmarks/e2e_overhead.py [--project recsys] [--date 2026-11-20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from esteira.config import load_project
from esteira.environments import load_environments
from esteira.runspec import RunValue, Target, build_plan

REPO = Path(__file__).resolve().parents[1]

# The variables esteira's local operator lets through to a step (esteira.airflow.local_operator);
# not imported from there, which would load Airflow into this process.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "VIRTUAL_ENV", "SYSTEMROOT")


def fresh_projects(root: Path) -> Path:
    """A copy of the repo's projects whose local home is root/home."""
    projects = root / "projects"
    shutil.copytree(REPO / "projects", projects)
    env_file = projects / "environments.yaml"
    env_file.write_text(env_file.read_text().replace("home: ../.esteira", "home: ../home"))
    return projects


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_direct(projects: Path, project: str, run_date: str) -> tuple[float, float, dict[str, float]]:
    spec = build_plan(load_project(projects / project / "config.yaml"),
                          Target.local(load_environments(projects / "environments.yaml")))
    values = {RunValue.RUN_DATE: run_date, RunValue.RUN_ID: f"benchmark__{run_date}"}
    base = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
    order = spec.graph.topological_order()
    per_step: dict[str, float] = {}
    cpu, started = children_cpu(), time.perf_counter()
    for step_id in order:
        step = spec.step(step_id)
        argv = list(step.command)
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        t = time.perf_counter()
        proc = subprocess.run(argv, cwd=projects / project, env={**base, **step.env(values.__getitem__)},
                              capture_output=True, text=True)
        per_step[step_id] = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"direct run: step {step_id} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - started, children_cpu() - cpu, per_step


def airflow_env(airflow_home: Path, projects: Path) -> dict[str, str]:
    return {**os.environ, "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "ESTEIRA_PROJECTS_DIR": str(projects), "ESTEIRA_BACKEND": "local"}


def run_airflow(airflow_home: Path, projects: Path, project: str, day: str) -> tuple[float, float]:
    airflow = Path(sys.executable).with_name("airflow")
    cpu, started = children_cpu(), time.perf_counter()
    proc = subprocess.run([str(airflow), "dags", "test", project, day], env=airflow_env(airflow_home, projects),
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"airflow dags test failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return wall, children_cpu() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", default="recsys")
    ap.add_argument("--date", default="2026-11-20", help="the run's logical date (YYYY-MM-DD)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    run_date = f"{args.date}T00:00:00Z"  # what `airflow dags test <project> <date>` hands the steps

    root = Path(tempfile.mkdtemp(prefix="esteira-e2e-"))
    try:
        airflow_home = root / "airflow"
        subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True,
                       env=airflow_env(airflow_home, REPO / "projects"), capture_output=True)
        subprocess.run([sys.executable, "-c", "import mlflow, sklearn.ensemble, pandas, pyarrow.parquet"],
                       check=True)  # warm the page cache so neither mode pays the first cold import
        direct: list[tuple[float, float]] = []
        through: list[tuple[float, float]] = []
        steps: dict[str, float] = {}
        for i in range(args.repeat):
            wall, cpu, steps = run_direct(fresh_projects(root / f"direct-{i}"), args.project, run_date)
            direct.append((wall, cpu))
            through.append(run_airflow(airflow_home, fresh_projects(root / f"airflow-{i}"), args.project, args.date))
            print(f"run {i + 1}: direct {wall:.1f}s wall / {cpu:.1f}s cpu; "
                  f"airflow {through[-1][0]:.1f}s wall / {through[-1][1]:.1f}s cpu", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    d_wall, d_cpu = (statistics.median(x) for x in zip(*direct, strict=True))
    a_wall, a_cpu = (statistics.median(x) for x in zip(*through, strict=True))
    n = len(steps)
    print(f"\n{args.project}, {n} steps, run date {run_date}, median of {args.repeat} "
          f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'':<26}{'wall s':>8}{'cpu s':>8}")
    print(f"{'steps run directly':<26}{d_wall:>8.1f}{d_cpu:>8.1f}")
    print(f"{'airflow dags test':<26}{a_wall:>8.1f}{a_cpu:>8.1f}")
    print(f"{'ratio airflow / direct':<26}{a_wall / d_wall:>8.2f}{a_cpu / d_cpu:>8.2f}")
    print(f"{'Airflow overhead':<26}{a_wall - d_wall:>8.1f}{a_cpu - d_cpu:>8.1f}"
          f"   ({(a_wall - d_wall) / n:.1f}s wall per step)")
    print("direct, per step (last run): " + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()))


if __name__ == "__main__":
    main()
