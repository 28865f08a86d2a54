"""How long `python -m asl_export <project>` takes, against the floor of any pydantic + YAML tool.

The export is a short-lived command (CI runs it per project and environment, `--check` in
pre-commit), so its time is mostly the start of the Python process: imports and the building of
the config's pydantic models. It is compared with the cheapest command that merely imports what the
export cannot do without:

  baseline  python -c "import yaml, pydantic"
  export    python -m asl_export <project> --env <env> --out <temp dir>   (this checkout's code), with
            its compile cache (ESTEIRA_CACHE_DIR, a temp dir) holding the project: what every export
            after the first pays while the config, environments.yaml and esteira stay the same
  cold      the same with ESTEIRA_CACHE_DIR=off: what the first export after a change pays (reported,
            not judged: it imports the config model and the renderers)

and, for reference only (not judged), with the least that any command validating with pydantic pays:

  floor     python -c "import yaml; from pydantic import BaseModel" + one model with one int field,
            built and validated once: pydantic's model machinery, imported on first use (`import
            pydantic` alone imports little), and its plugin lookup (importlib.metadata, every
            installed distribution's entry points) when the first validator is built

Method: each command is run once untimed first, with bytecode writing allowed (PYTHONDONTWRITEBYTECODE
is dropped from the children's environment), so every module has its .pyc as after any install;
the export's exit code is checked there. Then --repeat fresh subprocesses of each, interleaved
(baseline, export, baseline, ...) so that drift in the machine's load hits both alike. For each run:

  wall  elapsed seconds from spawning the child to reaping it
  cpu   the child's user + system CPU seconds, from os.wait4's rusage (steadier than wall when
        other work shares the machine)

The export's wall time also holds its writes: each file is fsynced before it replaces the old one.
The medians are printed with their ratios to the baseline; PASS when both ratios are at most
--target (default 1.5), else FAIL (exit code 1). --importtime adds where one export run's import
time goes (python -X importtime: modules of at least 3% of it, nested as imported).

Every child runs in a temp dir with PYTHONPATH=<repo>/plugins:<repo>, so this checkout's esteira is
measured whatever is installed, and ESTEIRA_* variables are removed (the projects are the
checkout's projects/).

Usage: python benchmarks/export_time.py [--repeat 10] [--project recsys] [--env dev] [--target 1.5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.5
FLOOR = "import yaml\nfrom pydantic import BaseModel\nclass A(BaseModel):\n    x: int\nA(x=1)"


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ESTEIRA_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), str(REPO)])
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int, bytes]:
    """(wall s, cpu s, exit code, stderr) of one fresh child."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    with proc.stderr:
        stderr = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, unlike RUSAGE_CHILDREN's sum
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode, stderr


def import_tree(stderr: str, share: float = 0.03) -> str:
    rows = []
    for line in stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[0].split(":")[1]), int(parts[1]), parts[2].rstrip()))
    total = sum(cum for _own, cum, name in rows if not name.startswith("  "))
    out = [f"imports of one export run (-X importtime, wall, inflated by the tracing): {total / 1e6:.3f} s; "
           f"modules >= {share:.0%} (cum s, own s)"]
    for own, cum, name in reversed(rows):  # importtime prints a module after its children
        if cum >= share * total:
            out.append(f"  {name[1:]:<64} {cum / 1e6:6.3f} {own / 1e6:6.3f}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10, help="timed fresh processes of each command (default 10)")
    ap.add_argument("--project", default="recsys", help="project to export (default recsys)")
    ap.add_argument("--env", default="dev", choices=("dev", "prd"), help="environment to export (default dev)")
    ap.add_argument("--target", type=float, default=TARGET,
                    help=f"largest acceptable ratio export/baseline (default {TARGET})")
    ap.add_argument("--importtime", action="store_true", help="also show where one export run's imports go")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    env = child_env()
    tmp = Path(tempfile.mkdtemp(prefix="esteira-export-time-"))
    try:
        export = [sys.executable, "-m", "asl_export", args.project, "--env", args.env, "--out", str(tmp / "out")]
        commands = {
            "baseline": ([sys.executable, "-c", "import yaml, pydantic"], env),
            "export": (export, {**env, "ESTEIRA_CACHE_DIR": str(tmp / "cache")}),
            "cold": (export, {**env, "ESTEIRA_CACHE_DIR": "off"}),
            "floor": ([sys.executable, "-c", FLOOR], env),
        }
        for name, (argv, cmd_env) in commands.items():  # untimed: writes the .pyc files (and the cache)
            _wall, _cpu, code, stderr = run(argv, tmp, cmd_env)
            if code != 0:
                print(f"{name} failed (exit {code}): {' '.join(argv)}\n{stderr.decode(errors='replace')}",
                      file=sys.stderr)
                return 2
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, (argv, cmd_env) in commands.items():  # interleaved
                wall, cpu, _code, _stderr = run(argv, tmp, cmd_env)
                times[name].append((wall, cpu))

        print(f"python {sys.version.split()[0]} ({sys.executable}), {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}; median of {args.repeat} fresh processes each, interleaved")
        medians = {name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
                   for name, runs in times.items()}
        label = {"baseline": 'baseline: python -c "import yaml, pydantic"',
                 "export": f"export: python -m asl_export {args.project} --env {args.env}",
                 "cold": "  the same, cache off (first export after a change)",
                 "floor": "floor: one pydantic model (reference)"}
        base_wall, base_cpu = medians["baseline"]
        print(f"{'':<52} {'wall s':>7} {'cpu s':>7} {'wall x':>7} {'cpu x':>7}")
        for name, (wall, cpu) in medians.items():
            print(f"{label[name]:<52} {wall:>7.3f} {cpu:>7.3f} {wall / base_wall:>7.2f} {cpu / base_cpu:>7.2f}")
        ok = all(medians["export"][i] / medians["baseline"][i] <= args.target for i in (0, 1))
        print(f"{'PASS' if ok else 'FAIL'}: the export within {args.target:g}x the baseline in wall and cpu")

        if args.importtime:
            for name in ("export", "cold"):
                argv, cmd_env = commands[name]
                print(f"\n{name}:\n" + import_tree(run([sys.executable, "-X", "importtime", *argv[1:]], tmp,
                                                       cmd_env)[3].decode(errors="replace")))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
