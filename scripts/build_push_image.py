#!/usr/bin/env python3
"""Build and push the ml_jobs image of projects as `{ecr_repository}:{project}-{version}`.

The seed's build_apps.sh, minus the shell: every command is an argument list, and the ECR
password travels from `aws ecr get-login-password` to `docker login --password-stdin` through a
pipe in this process, never through argv or a file. Names come from esteira's core (the same
`ProjectNames.image_uri` the task definitions use), so the pushed tag is the one ECS pulls.

    python scripts/build_push_image.py recsys --env dev
    python scripts/build_push_image.py --all --env prd --dry-run   # print the exact commands

Exit codes: 0 pushed (or printed); 1 a command failed, or no Docker engine / AWS CLI;
2 bad usage or config (unknown project, invalid config.yaml, no Dockerfile).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from esteira.config import CONFIG_FILE, Project, load_project
from esteira.discovery import LoadFailure, discover, project_files
from esteira.environments import ENV_NAMES, AwsEnvironment, load_environments
from esteira.errors import ConfigError
from esteira.settings import Settings

REPO = Path(__file__).resolve().parents[1]

EXIT_OK, EXIT_FAILED, EXIT_BAD = 0, 1, 2
DOCKERFILE = REPO / "ml_jobs" / "Dockerfile"
# ECS runs the jobs on x86 instances (infra.compute.ec2_type); an image built on an ARM laptop
# would start and die with "exec format error", so the platform is explicit.
PLATFORM = "linux/amd64"


class Refused(Exception):
    """A problem the user fixes (exit 2); the message says what and where."""


class Failed(Exception):
    """A command or the machine failed (exit 1)."""


@dataclass(frozen=True)
class Plan:
    """Everything to run, decided before anything runs, so --dry-run shows exactly this."""

    login: tuple[list[str], list[str]]  # (aws ecr get-login-password ..., docker login ...)
    builds: list[tuple[str, list[str], list[str]]]  # (image uri, docker build ..., docker push ...)

    def lines(self) -> list[str]:
        password, login = self.login
        out = [f"{shlex.join(password)} | {shlex.join(login)}"]
        for _uri, build, push in self.builds:
            out += [shlex.join(build), shlex.join(push)]
        return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/build_push_image.py",
        description="Build ml_jobs/Dockerfile once per project and push it to the environment's ECR "
                    "repository as <ecr_repository>:<project>-<version> (names from projects/environments.yaml "
                    "and each project's config.yaml).",
        epilog="exit codes: 0 pushed (or printed with --dry-run); 1 a command failed or no Docker engine; "
               "2 bad usage or config",
    )
    p.add_argument("projects", nargs="*", metavar="PROJECT", help="project names (folders under the projects dir)")
    p.add_argument("--all", action="store_true", help="every project in the projects dir")
    p.add_argument("--env", choices=ENV_NAMES, required=True, help="AWS environment from environments.yaml")
    p.add_argument("--projects-dir", type=Path, help="folder of <project>/config.yaml (default: "
                   "ESTEIRA_PROJECTS_DIR, else the repo's projects/)")
    p.add_argument("--dockerfile", type=Path, default=DOCKERFILE, help="default: ml_jobs/Dockerfile")
    p.add_argument("--context", type=Path, default=REPO, help="docker build context (default: the repo root)")
    p.add_argument("--git-sha", help="commit recorded in the image label (default: $GITHUB_SHA, else git HEAD)")
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if bool(args.projects) == args.all:
        return _usage("name one or more projects, or pass --all (not both)")
    try:
        plan = make_plan(args)
        if args.dry_run:
            print("\n".join(plan.lines()))
            return EXIT_OK
        run(plan)
    except Refused as exc:
        print(f"build_push_image: {exc}", file=sys.stderr)
        return EXIT_BAD
    except Failed as exc:
        print(f"build_push_image: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _usage(message: str) -> int:
    print(f"build_push_image: error: {message}\n(see scripts/build_push_image.py --help)", file=sys.stderr)
    return EXIT_BAD


def make_plan(args: argparse.Namespace) -> Plan:
    """The login, build and push commands for the chosen projects and environment."""
    try:
        settings = Settings.from_environ()
    except ValueError as exc:
        raise Refused(str(exc)) from exc
    projects_dir: Path = args.projects_dir or settings.projects_dir
    env_file = projects_dir / "environments.yaml" if args.projects_dir else settings.environments_file
    try:
        aws = load_environments(env_file).aws(args.env)
        projects = load_projects(projects_dir, args.projects, args.all)
    except ConfigError as exc:
        raise Refused(str(exc)) from exc
    if not args.dockerfile.is_file():
        # --dry-run still shows the commands: the Dockerfile may be on its way in the same change.
        message = f"no Dockerfile at {args.dockerfile}"
        if not args.dry_run:
            raise Refused(message)
        print(f"build_push_image: warning: {message}", file=sys.stderr)
    sha = args.git_sha or git_sha()
    builds = []
    for project in projects:
        uri = project.names.image_uri(aws.ecr_repository)
        builds.append((uri, build_command(project, uri, sha, args.dockerfile, args.context), ["docker", "push", uri]))
    return Plan(login=login_commands(aws), builds=builds)


def load_projects(projects_dir: Path, names: list[str], everything: bool) -> list[Project]:
    """Load the named projects (or all); every invalid one is reported, none is half-built."""
    if everything:
        loaded = discover(projects_dir)
        failures = [str(item.error) for item in loaded if isinstance(item, LoadFailure)]
        if failures:
            raise Refused("\n".join(failures))
        if not loaded:
            raise Refused(f"no projects found under {projects_dir} (expected <project>/{CONFIG_FILE})")
        return [p for p in loaded if isinstance(p, Project)]
    known = [f.parent.name for f in project_files(projects_dir)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Refused(f"unknown project(s): {', '.join(unknown)}; known projects in {projects_dir}: "
                      f"{', '.join(known) or '(none)'}")
    out, problems = [], []
    for name in dict.fromkeys(names):
        try:
            out.append(load_project(projects_dir / name / CONFIG_FILE))
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise Refused("\n".join(problems))
    return out


def login_commands(aws: AwsEnvironment) -> tuple[list[str], list[str]]:
    """`aws ecr get-login-password | docker login`, as two argv lists joined by a pipe we own."""
    registry = aws.ecr_repository.split("/", 1)[0]
    return (["aws", "ecr", "get-login-password", "--region", aws.region],
            ["docker", "login", "--username", "AWS", "--password-stdin", registry])


def build_command(project: Project, uri: str, sha: str, dockerfile: Path, context: Path) -> list[str]:
    """docker build of one project's image; labels say which commit and config version it holds."""
    cfg = project.config
    return [
        "docker", "build",
        "--file", str(dockerfile),
        "--platform", PLATFORM,
        "--tag", uri,
        "--build-arg", f"PROJECT={cfg.project_name}",
        "--label", f"org.opencontainers.image.revision={sha}",
        "--label", f"org.opencontainers.image.version={cfg.version}",
        "--label", f"org.opencontainers.image.title={cfg.project_name}",
        "--label", f"io.esteira.project={cfg.project_name}",
        str(context),
    ]


def git_sha() -> str:
    """The commit being built: CI's $GITHUB_SHA, else HEAD of this checkout (read only)."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def run(plan: Plan) -> None:
    """Check the tools, log in once, then build and push each image; stop at the first failure."""
    require_docker_engine()
    if shutil.which("aws") is None:
        raise Failed("the AWS CLI ('aws') is not on PATH; it is needed for 'aws ecr get-login-password'")
    password_cmd, login_cmd = plan.login
    password = _run(password_cmd, capture=True)
    _run(login_cmd, stdin=password)
    for uri, build, push in plan.builds:
        _run(build)
        _run(push)
        print(f"pushed {uri}", flush=True)


def require_docker_engine() -> None:
    """Fail early and plainly when there is no Docker: the CLI alone cannot build anything."""
    if shutil.which("docker") is None:
        raise Failed("there is no Docker engine here: the 'docker' command is not on PATH "
                     "(install Docker, or use --dry-run to see the commands)")
    probe = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        detail = (probe.stderr.strip().splitlines() or ["no detail"])[-1]
        raise Failed(f"there is no Docker engine reachable: the docker CLI is installed but "
                     f"'docker version' cannot reach a daemon ({detail})")


def _run(cmd: list[str], *, stdin: str | None = None, capture: bool = False) -> str:
    # No shell, ever: argv lists only. Output goes to the CI log, except a captured secret.
    shown = shlex.join(cmd)
    print(f"+ {shown}", flush=True)
    try:
        done = subprocess.run(cmd, input=stdin, text=True, check=False,
                              stdout=subprocess.PIPE if capture else None)
    except OSError as exc:
        raise Failed(f"could not run {cmd[0]!r}: {exc}") from exc
    if done.returncode != 0:
        raise Failed(f"'{shown}' failed with exit code {done.returncode}")
    return done.stdout if capture else ""


if __name__ == "__main__":
    sys.exit(main())
