"""Export projects as Step Functions ASL, EventBridge Scheduler requests and a CloudFormation stack;
`--check` for drift in CI, `--deploy` to create or update the stacks.

Exit codes: 0 done (or no drift, or nothing to deploy), 1 `--check` found drift or a deploy
failed, 2 bad config or bad usage. Everything is rendered before anything is written or
deployed, so a bad project leaves no half export and deploys nothing.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from esteira.asl import render_state_machine, to_json
from esteira.cloudformation import render_stack
from esteira.config import CONFIG_FILE, Project, load_project
from esteira.discovery import LoadFailure, discover, project_files
from esteira.environments import ENV_NAMES, Environments, load_environments
from esteira.errors import ConfigError, unexpected_error
from esteira.runspec import Target, build_run_spec
from esteira.schedules import render_schedules
from esteira.settings import Settings

EXIT_OK, EXIT_DRIFT, EXIT_BAD = 0, 1, 2
EXIT_FAILED = 1  # a deploy that did not finish
STATE_MACHINE_FILE = "state_machine.asl.json"
SCHEDULES_FILE = "schedules.json"
STACK_FILE = "stack.cfn.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m asl_export",
        description="Render projects/<name>/config.yaml as an AWS Step Functions state machine "
                    f"(<out>/<env>/<project>/{STATE_MACHINE_FILE}), the EventBridge Scheduler "
                    f"CreateSchedule requests that start it ({SCHEDULES_FILE}) and the CloudFormation "
                    f"stack holding every resource the project runs on ({STACK_FILE}); optionally "
                    "deploy that stack.",
        epilog="exit codes: 0 written (with --check: up to date; with --deploy: deployed or no changes); "
               "1 --check found drift, or a deploy failed; 2 invalid config or bad usage. "
               "Examples: python -m asl_export recsys --env prd --check; "
               "python -m asl_export --all --env dev --deploy (needs AWS credentials for dev's account)",
    )
    p.add_argument("projects", nargs="*", metavar="PROJECT", help="project names (folders under the projects dir)")
    p.add_argument("--all", action="store_true", help="every project in the projects dir")
    p.add_argument("--env", choices=ENV_NAMES, default="dev", help="AWS environment from environments.yaml "
                   "(default: dev)")
    p.add_argument("--projects-dir", type=Path, help="folder of <project>/config.yaml (default: "
                   "ESTEIRA_PROJECTS_DIR, else the repo's projects/)")
    p.add_argument("--out", type=Path, default=Path("build/asl"), help="output folder (default: build/asl)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 and show a diff when the files "
                      "on disk differ from what would be written")
    mode.add_argument("--deploy", action="store_true", help="after writing, create or update each project's "
                      "stack esteira-<project> through a CloudFormation change set (shows the changes; does "
                      "nothing when nothing changed); refuses credentials of another account than the "
                      "environment's")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if bool(args.projects) == args.all:
        return _usage("name one or more projects, or pass --all (not both)")
    try:
        settings = Settings.from_environ()
    except ValueError as exc:
        return _usage(str(exc))
    projects_dir: Path = args.projects_dir or settings.projects_dir
    env_file = projects_dir / "environments.yaml" if args.projects_dir else settings.environments_file
    try:
        target = Target.aws_env(_environments(env_file), args.env)
        projects = _load(projects_dir, args.projects, args.all)
        files, stacks = _render(projects, target, args.out)
    except (_Refused, ConfigError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD
    if args.check:
        return _check(files)
    _write(files)
    return _deploy(stacks, target) if args.deploy else EXIT_OK


def _deploy(stacks: list[tuple[Project, dict[str, Any]]], target: Target) -> int:
    """Deploy stack after stack; stop at the first failure (later ones may depend on nothing, but a
    CI run that failed should be looked at before it changes more)."""
    import boto3  # only a deploy needs it

    from esteira.deploy import DeployError, deploy_stack

    aws = target.aws
    assert aws is not None
    session = boto3.Session(region_name=aws.region)
    for project, template in stacks:
        tags = {"esteira:project": project.name, "esteira:env": target.env, "esteira:version": project.config.version}
        try:
            deploy_stack(session, project.names.stack, template, account_id=aws.account_id, tags=tags,
                         say=lambda line: print(line, flush=True))
        except DeployError as exc:
            print(f"deploy failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK


class _Refused(Exception):
    pass


def _usage(message: str) -> int:
    print(f"python -m asl_export: error: {message}\n(see python -m asl_export --help)", file=sys.stderr)
    return EXIT_BAD


def _environments(env_file: Path) -> Environments:
    try:
        return load_environments(env_file)
    except ConfigError:
        raise
    except Exception as exc:  # a config mistake never ends in a traceback
        raise unexpected_error(env_file, exc) from None


def _load(projects_dir: Path, names: list[str], everything: bool) -> list[Project]:
    if everything:
        loaded = discover(projects_dir)
        failures = [str(item.error) for item in loaded if isinstance(item, LoadFailure)]
        if failures:
            raise _Refused("\n".join(failures))
        if not loaded:
            raise _Refused(f"no projects found under {projects_dir} (expected <project>/{CONFIG_FILE})")
        return [p for p in loaded if isinstance(p, Project)]
    known = [f.parent.name for f in project_files(projects_dir)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise _Refused(f"unknown project(s): {', '.join(unknown)}; known projects in {projects_dir}: "
                       f"{', '.join(known) or '(none)'}")
    problems: list[str] = []
    out: list[Project] = []
    for name in dict.fromkeys(names):
        file = projects_dir / name / CONFIG_FILE
        try:
            out.append(load_project(file))
        except ConfigError as exc:
            problems.append(str(exc))
        except Exception as exc:  # reported with the others, never a traceback
            problems.append(str(unexpected_error(file, exc)))
    if problems:
        raise _Refused("\n".join(problems))
    return out


def _render(projects: list[Project], target: Target,
            out: Path) -> tuple[dict[Path, str], list[tuple[Project, dict[str, Any]]]]:
    files: dict[Path, str] = {}
    stacks: list[tuple[Project, dict[str, Any]]] = []
    problems: list[str] = []
    for project in projects:
        try:
            rendered = _render_project(project, target, out)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # every project is rendered and reported; nothing written
            problems.append(str(unexpected_error(project.source, exc)))
            continue
        files |= rendered[0]
        stacks.append((project, rendered[1]))
    if problems:
        raise _Refused("\n".join(problems))
    return files, stacks


def _render_project(project: Project, target: Target, out: Path) -> tuple[dict[Path, str], dict[str, Any]]:
    spec = build_run_spec(project, target)
    folder = out / target.env / project.name
    stack = render_stack(spec)
    files = {
        folder / STATE_MACHINE_FILE: to_json(render_state_machine(spec)),
        folder / SCHEDULES_FILE: json.dumps(render_schedules(spec), indent=2, ensure_ascii=False) + "\n",
        folder / STACK_FILE: json.dumps(stack, indent=2, ensure_ascii=False) + "\n",
    }
    return files, stack


def _check(files: dict[Path, str]) -> int:
    drift = 0
    for path, text in files.items():
        current = path.read_text() if path.is_file() else None
        if current == text:
            print(f"up to date  {path}")
            continue
        drift += 1
        if current is None:
            print(f"missing     {path}")
        else:
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"{path} (on disk)", tofile=f"{path} (from config)"))
    if drift:
        print(f"{drift} file(s) differ from the configs; run without --check to update them", file=sys.stderr)
        return EXIT_DRIFT
    return EXIT_OK


def _write(files: dict[Path, str]) -> int:
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)  # atomic: a reader never sees half a file
        print(f"wrote {path}")
    return EXIT_OK
