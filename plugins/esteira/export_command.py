"""`esteira export` (also `python -m asl_export`): projects as Step Functions ASL, EventBridge Scheduler
requests and a CloudFormation stack; `--check` for drift in CI, `--deploy` to create or update the stacks.

Exit codes: 0 done (or no drift, or nothing to deploy), 1 `--check` found drift or a deploy
failed, 2 bad config or bad usage, 3 the output could not be written or read (I/O). Everything
is rendered before anything is written or deployed, so a bad project leaves no half export and
deploys nothing; each project's files are then replaced together (asl_export.output_tree).

An export whose inputs did not change is served from the compile cache (esteira.compile_cache;
the key holds the config's and environments.yaml's bytes, the environment and esteira's code), so
it imports neither the config model nor the renderers: those are imported when something must be
compiled. A deploy always compiles.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.compile_cache import CompileCache, cache_key, code_fingerprint
from esteira.discovery import CONFIG_FILE, project_files
from esteira.errors import ConfigError, unexpected_error
from esteira.output_tree import SCHEDULES_FILE, STACK_FILE, STATE_MACHINE_FILE, OutputError, check, write_project
from esteira.settings import ENV_NAMES, Settings
from esteira.yaml_source import read_config_bytes

if TYPE_CHECKING:  # the config model and the renderers: imported when a project is compiled
    from esteira.config import Project
    from esteira.environments import Environments
    from esteira.plan import Target

EXIT_OK, EXIT_DRIFT, EXIT_BAD, EXIT_IO = 0, 1, 2, 3
EXIT_FAILED = 1  # a deploy that did not finish


def parser(prog: str = "python -m asl_export") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Render projects/<name>/config.yaml as an AWS Step Functions state machine "
                    f"(<out>/<env>/<project>/{STATE_MACHINE_FILE}), the EventBridge Scheduler "
                    f"CreateSchedule requests that start it ({SCHEDULES_FILE}) and the CloudFormation "
                    f"stack holding every resource the project runs on ({STACK_FILE}); optionally "
                    "deploy that stack.",
        epilog="exit codes: 0 written (with --check: up to date; with --deploy: deployed or no changes); "
               "1 --check found drift (a changed, missing, stray or stale file), or a deploy failed; "
               "2 invalid config or bad usage (nothing written); 3 the output folder could not be written "
               "or read (each project's files are all replaced or none are). "
               f"Examples: {prog} recsys --env prd --check; "
               f"{prog} --all --env dev --deploy (needs AWS credentials for dev's account)",
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
    p.add_argument("--timeout", type=_minutes, default=30, metavar="MINUTES",
                   help="with --deploy: stop waiting for a stack after MINUTES (default 30; its change set "
                        "gets 5); CloudFormation carries on, and the message says where to look")
    return p


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 24 * 60:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes between 0 and 1440")
    return value


def main(argv: list[str] | None = None, prog: str = "python -m asl_export") -> int:
    args = parser(prog).parse_args(argv)
    if bool(args.projects) == args.all:
        return _usage(prog, "name one or more projects, or pass --all (not both)")
    try:
        settings = Settings.from_environ()
    except ValueError as exc:
        return _usage(prog, str(exc))
    projects_dir: Path = args.projects_dir or settings.projects_dir
    env_file = projects_dir / "environments.yaml" if args.projects_dir else settings.environments_file
    cache = _OutputCache(settings, projects_dir, env_file, args.env)
    cached = None if args.deploy else cache.files(args.projects, args.all, args.out)
    if cached is not None:
        rendered: Rendered = [(None, files, {}) for files in cached]
    else:
        from esteira.plan import Target

        try:
            target = Target.aws_env(_environments(env_file), args.env)
            projects = _load(projects_dir, args.projects, args.all, cache.raw)
            rendered = _render(projects, target, args.out)
        except (_Refused, ConfigError) as exc:
            print(exc, file=sys.stderr)
            return EXIT_BAD
        cache.store(rendered)
    try:
        if args.check:
            return _check(rendered, args.out / args.env, everything=args.all, projects_dir=projects_dir)
        for _project, files, _stack in rendered:
            for path in write_project(files):
                print(f"wrote {path}")
    except OutputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_IO
    except OSError as exc:
        print(f"{prog}: error: cannot read {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_IO
    if not args.deploy:
        return EXIT_OK
    stacks = [(project, stack) for project, _files, stack in rendered if project is not None]
    return _deploy(stacks, target, args.timeout * 60)


class _OutputCache:
    """Each project's three files for one environment, from esteira.compile_cache."""

    def __init__(self, settings: Settings, projects_dir: Path, env_file: Path, env: str) -> None:
        self.cache = CompileCache(settings.cache_dir)
        self.projects_dir = projects_dir
        self.env = env
        try:
            self.env_bytes: bytes | None = read_config_bytes(env_file)
        except ConfigError:
            self.env_bytes = None  # never a hit: compiling says what is wrong with it
        self._raws: dict[Path, bytes] = {}
        self.context = json.dumps(["export", env, str(projects_dir.resolve()), str(env_file.resolve())])

    def raw(self, config: Path) -> bytes:
        """The config's bytes, read once: the key and the compile see the very same bytes."""
        if config not in self._raws:
            self._raws[config] = read_config_bytes(config)
        return self._raws[config]

    def _key(self, config: Path) -> tuple[str, str] | None:
        try:
            raw = self.raw(config)
        except ConfigError:
            return None
        return f"{self.context} {config.absolute()}", cache_key(self.context, code_fingerprint(), raw, self.env_bytes)

    def files(self, names: list[str], everything: bool, out: Path) -> list[dict[Path, str]] | None:
        """Every requested project's {path: text}, or None unless each one is cached."""
        if self.cache.root is None or self.env_bytes is None:
            return None
        configs = (project_files(self.projects_dir) if everything
                   else [self.projects_dir / name / CONFIG_FILE for name in dict.fromkeys(names)])
        found: list[dict[Path, str]] = []
        for config in configs:
            key = self._key(config)
            hit = self.cache.get(*key) if key else None
            if not isinstance(hit, dict):
                return None
            folder = out / self.env / config.parent.name
            found.append({folder / name: text for name, text in hit.items()})
        return found or None

    def store(self, rendered: Rendered) -> None:
        for project, files, _stack in rendered:
            key = self._key(project.source) if project is not None else None
            if key is not None:
                self.cache.put(*key, {path.name: text for path, text in files.items()})


def _deploy(stacks: list[tuple[Project, dict[str, Any]]], target: Target, timeout_seconds: float) -> int:
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
                         template_store=f"{aws.data_root.rstrip('/')}/_esteira", timeout_seconds=timeout_seconds,
                         say=lambda line: print(line, flush=True))
        except DeployError as exc:
            print(f"deploy failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK


class _Refused(Exception):
    pass


def _usage(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}\n(see {prog} --help)", file=sys.stderr)
    return EXIT_BAD


def _environments(env_file: Path) -> Environments:
    from esteira.environments import load_environments

    try:
        return load_environments(env_file)
    except ConfigError:
        raise
    except Exception as exc:  # a config mistake never ends in a traceback
        raise unexpected_error(env_file, exc) from None


def _load(projects_dir: Path, names: list[str], everything: bool, read: Callable[[Path], bytes]) -> list[Project]:
    """Every named project (or all), each parsed from `read`'s bytes; _Refused naming every problem."""
    from esteira.config import Project, load_project
    from esteira.discovery import LoadFailure, discover

    if everything:
        loaded = discover(projects_dir, read)
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
            out.append(load_project(file, read(file)))
        except ConfigError as exc:
            problems.append(str(exc))
        except Exception as exc:  # reported with the others, never a traceback
            problems.append(str(unexpected_error(file, exc)))
    if problems:
        raise _Refused("\n".join(problems))
    return out


# (project, {path: text}, stack); project None: served from the cache (never deployed)
Rendered = list[tuple["Project | None", dict[Path, str], dict[str, Any]]]


def _render(projects: list[Project], target: Target, out: Path) -> Rendered:
    """(project, {path: text}, stack) of every project; refuses all if any fails."""
    rendered: Rendered = []
    problems: list[str] = []
    for project in projects:
        try:
            files, stack = _render_project(project, target, out)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # every project is rendered and reported; nothing written
            problems.append(str(unexpected_error(project.source, exc)))
            continue
        rendered.append((project, files, stack))
    if problems:
        raise _Refused("\n".join(problems))
    return rendered


def _render_project(project: Project, target: Target, out: Path) -> tuple[dict[Path, str], dict[str, Any]]:
    from esteira.compile import compile_aws

    compiled = compile_aws(project, target)
    folder = out / target.env / project.name
    return {folder / name: text for name, text in compiled.files().items()}, compiled.stack


def _check(rendered: Rendered, env_out: Path, *, everything: bool, projects_dir: Path) -> int:
    files = {path: text for _project, project_files, _stack in rendered for path, text in project_files.items()}
    folders = sorted({path.parent for path in files})
    known = {f.parent.name for f in project_files(projects_dir)}
    drift = check(files, folders, env_out if everything else None, known)
    if drift:
        print(f"{drift} file(s) differ from the configs; run without --check to update them", file=sys.stderr)
        return EXIT_DRIFT
    return EXIT_OK
