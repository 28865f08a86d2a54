"""`python -m esteira validate`: check every project without Airflow, as CI or a pre-commit hook would."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from esteira.config import Project
from esteira.discovery import discover
from esteira.environments import ENV_NAMES, load_environments
from esteira.errors import ConfigError
from esteira.runspec import Target, build_run_spec
from esteira.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m esteira",
        description="esteira: one config.yaml per ML project, rendered for Airflow and Step Functions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    val = sub.add_parser(
        "validate",
        help="check every projects/*/config.yaml and projects/environments.yaml",
        description="Load every project the DAG factory would load, and build its run spec for "
                    "each environment. Exit 0 when all are valid, 2 when any is not.",
    )
    val.add_argument("--projects-dir", type=Path,
                     help="folder of <project>/config.yaml (default: ESTEIRA_PROJECTS_DIR, "
                          "else the repo's projects/)")
    val.add_argument("--environments", type=Path,
                     help="environments file (default: <projects-dir>/environments.yaml)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_environ()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    projects_dir = args.projects_dir or settings.projects_dir
    env_file = args.environments or (projects_dir / "environments.yaml" if args.projects_dir
                                     else settings.environments_file)
    failed = False
    try:
        environments = load_environments(env_file)
        targets = [Target.local(environments)] + [Target.aws_env(environments, e) for e in ENV_NAMES]
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        failed, targets = True, []
    for item in discover(projects_dir):
        if not isinstance(item, Project):
            print(item.error, file=sys.stderr)
            failed = True
            continue
        try:
            for target in targets:
                build_run_spec(item, target)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            failed = True
            continue
        print(f"ok  {item.name}: {len(item.steps)} steps ({item.source})")
    return 2 if failed else 0


# `__package__` tells `python -m esteira` apart from a loader that imports this file by path
# under the name "__main__" (Airflow's plugin loader does, when .airflowignore is missing).
if __name__ == "__main__" and __package__ == "esteira":
    sys.exit(main())
