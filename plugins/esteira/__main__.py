"""`esteira validate | export | deploy | schema | mwaa-bundle` (or `python -m esteira ...`): one command line
on one load + compile path.

Both run where CI or a pre-commit hook does, with only the core installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from esteira import mwaa
from esteira.compile import check_project
from esteira.config import Project
from esteira.discovery import discover
from esteira.environments import Environments, load_environments
from esteira.errors import ConfigError, unexpected_error
from esteira.schema import SCHEMA_FILE, schema_text
from esteira.settings import Settings

EXIT_OK, EXIT_BAD = 0, 2
_PROJECTS_HELP = "folder of <project>/config.yaml (default: ESTEIRA_PROJECTS_DIR, else the repo's projects/)"

_BUNDLE_LAYOUT = (
    ("<out>/dags/esteira_dags.py", "the DAG file (one DAG per project)"),
    (f"<out>/dags/{mwaa.PROJECTS_FOLDER}/", "the projects folder with its environments.yaml; esteira"),
    ("", "finds it there on MWAA without ESTEIRA_PROJECTS_DIR"),
    ("<out>/dags/.airflowignore", f"keeps the DAG processor out of {mwaa.PROJECTS_FOLDER}/"),
    ("<out>/plugins.zip", "the esteira package (MWAA unpacks it onto Airflow's sys.path)"),
    ("<out>/requirements.txt", "Airflow's --constraint line + esteira's run-time packages"),
)
_BUNDLE_DESCRIPTION = "\n".join([
    "Build what an Amazon MWAA environment deploys from its S3 bucket, after checking every",
    "project as `validate` does (nothing is written when one is invalid):",
    "",
    *(f"  {path:<34}{what}" for path, what in _BUNDLE_LAYOUT),
    "",
    "The output is byte-identical on re-runs. <out> must be empty (or missing) or hold a previous",
    f"bundle: <out>/{mwaa.MANIFEST} lists every file esteira wrote with its sha256, and esteira",
    "replaces or removes only those, only while unchanged (files the projects no longer have go;",
    "identical files are left untouched). It never deletes or overwrites a file it did not write:",
    "an <out> holding any other file, a symlink or an edited bundle file is refused, naming them.",
])


PROG = "esteira" if Path(sys.argv[0]).name == "esteira" else "python -m esteira"
# handed whole to esteira.export_command (also `python -m asl_export`): the same flags and exit codes
EXPORT_COMMANDS = {
    "export": "write the Step Functions state machine, EventBridge schedules and CloudFormation stack "
              "of projects (--check for drift, --deploy to deploy); see `export --help`",
    "deploy": "export, then create or update each project's stack through a change set "
              "(= export --deploy); see `deploy --help`",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="esteira: one config.yaml per ML project, rendered for Airflow and Step Functions.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, summary in EXPORT_COMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)
    val = sub.add_parser(
        "validate",
        help="check every projects/*/config.yaml and projects/environments.yaml",
        description="Load every project the DAG factory would load, and build its run spec for "
                    "each environment. Exit 0 when all are valid, 2 when any is not.",
    )
    val.add_argument("--projects-dir", type=Path, help=_PROJECTS_HELP)
    val.add_argument("--environments", type=Path,
                     help="environments file (default: <projects-dir>/environments.yaml)")
    bundle = sub.add_parser(
        "mwaa-bundle",
        help="build the dags/, plugins.zip and requirements.txt that Amazon MWAA deploys",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_BUNDLE_DESCRIPTION,
        epilog="""\
deploy (MWAA picks up plugins.zip and requirements.txt only when the environment is updated):
  aws s3 sync <out>/dags s3://BUCKET/dags --delete
  aws s3 cp <out>/plugins.zip s3://BUCKET/plugins.zip
  aws s3 cp <out>/requirements.txt s3://BUCKET/requirements.txt
  aws mwaa update-environment --name ENV --plugins-s3-object-version V1 --requirements-s3-object-version V2
On MWAA steps run on ECS (ESTEIRA_BACKEND defaults to ecs there) in the AWS environment
ESTEIRA_ENV names (default dev; set it in the environment's startup script).

exit codes: 0 written; 2 invalid project, bad usage or a folder esteira does not own (nothing written);
3 could not write (I/O error).""",
    )
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of config.yaml (editors validate and complete with it)",
        description="The JSON Schema of projects/<name>/config.yaml, generated from esteira's model. "
                    "Start a config with `# yaml-language-server: $schema=<path>/config.schema.json` and "
                    "an editor with the YAML language server checks each field as you type; `validate` "
                    "still checks what one field alone cannot say.",
        epilog=f"exit codes: 0 printed, written or up to date; 1 --check found the file differs. "
               f"The package's copy: {SCHEMA_FILE}",
    )
    schema_mode = schema.add_mutually_exclusive_group()
    schema_mode.add_argument("--out", type=Path, metavar="FILE", help="write it to FILE instead of printing it")
    schema_mode.add_argument("--check", type=Path, nargs="?", const=SCHEMA_FILE, metavar="FILE",
                             help="exit 1 when FILE (default: the package's copy) differs from the model")
    bundle.add_argument("--out", type=Path, default=Path("build/mwaa"), metavar="DIR",
                        help="output folder (default: build/mwaa)")
    bundle.add_argument("--projects-dir", type=Path, metavar="DIR",
                        help=_PROJECTS_HELP + "; its environments.yaml is shipped")
    bundle.add_argument("--airflow-version", default=mwaa.DEFAULT_AIRFLOW_VERSION, metavar="X.Y.Z",
                        help="the MWAA environment's Airflow release, for the constraints line "
                             f"(default: {mwaa.DEFAULT_AIRFLOW_VERSION})")
    bundle.add_argument("--python-version", default=mwaa.DEFAULT_PYTHON_VERSION, metavar="3.N",
                        help=f"the MWAA environment's Python, for the constraints line "
                             f"(default: {mwaa.DEFAULT_PYTHON_VERSION})")
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("esteira")
    except PackageNotFoundError:  # pragma: no cover - a checkout not installed (MWAA's plugins.zip)
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in EXPORT_COMMANDS:
        from esteira.export_command import main as export

        return export([*argv[1:], *(["--deploy"] if argv[0] == "deploy" else [])], prog=f"{PROG} {argv[0]}")
    args = parser().parse_args(argv)
    if args.command == "schema":
        return _schema(args)
    try:
        settings = Settings.from_environ()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD
    projects_dir = args.projects_dir or settings.projects_dir
    if args.command == "mwaa-bundle":
        return _mwaa_bundle(args, projects_dir)
    env_file = args.environments or (projects_dir / "environments.yaml" if args.projects_dir
                                     else settings.environments_file)
    return EXIT_OK if _check_projects(projects_dir, env_file, quiet=False) else EXIT_BAD


def _schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.check is not None:
        current = args.check.read_text() if args.check.is_file() else None
        if current != text:
            print(f"{args.check} differs from the config model; regenerate it: "
                  f"python -m esteira schema --out {args.check}", file=sys.stderr)
            return 1
        print(f"up to date  {args.check}")
    elif args.out is not None:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _check_projects(projects_dir: Path, env_file: Path, *, quiet: bool) -> bool:
    """Load every project and build its run spec for every target; print each problem (file:line)."""
    ok = True
    environments: Environments | None = None
    try:
        environments = load_environments(env_file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        ok = False
    except Exception as exc:  # reported like any config mistake, never a traceback
        print(unexpected_error(env_file, exc), file=sys.stderr)
        ok = False
    for item in discover(projects_dir):
        if not isinstance(item, Project):
            print(item.error, file=sys.stderr)
            ok = False
            continue
        try:
            if environments is not None:
                check_project(item, environments)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            ok = False
            continue
        except Exception as exc:  # one project's failure is reported, the others go on
            print(unexpected_error(item.source, exc), file=sys.stderr)
            ok = False
            continue
        if not quiet:
            print(f"ok  {item.name}: {len(item.steps)} steps ({item.source})")
    return ok


def _mwaa_bundle(args: argparse.Namespace, projects_dir: Path) -> int:
    """Check the projects (the environments file shipped is the one in projects_dir), then build."""
    try:
        mwaa.check_versions(args.airflow_version, args.python_version)
        if not projects_dir.is_dir():
            raise mwaa.BundleError(f"--projects-dir {projects_dir}: no such folder")
        if not _check_projects(projects_dir, projects_dir / "environments.yaml", quiet=True):
            raise mwaa.BundleError(f"invalid project(s) under {projects_dir} (above); nothing written")
        if not discover(projects_dir):
            raise mwaa.BundleError(f"no projects under {projects_dir} (expected <project>/config.yaml)")
        done = mwaa.build_bundle(args.out, projects_dir, airflow_version=args.airflow_version,
                                 python_version=args.python_version)
    except mwaa.BundleError as exc:
        print(f"python -m esteira mwaa-bundle: error: {exc}", file=sys.stderr)
        return EXIT_BAD
    except mwaa.BundleIOError as exc:
        print(f"python -m esteira mwaa-bundle: error: {exc}", file=sys.stderr)
        return 3  # could not write (I/O error)
    files = done.files
    dags = [name for name in files if name.startswith(f"{mwaa.DAGS}/")]
    print(f"wrote {args.out / mwaa.DAGS}/ ({len(dags)} files: esteira_dags.py, .airflowignore, "
          f"{mwaa.PROJECTS_FOLDER}/)")
    for name in (mwaa.PLUGINS_ZIP, mwaa.REQUIREMENTS):
        print(f"wrote {args.out / name} ({len(files[name])} bytes)")
    print(f"{len(done.written)} written, {len(done.unchanged)} already identical, {len(done.removed)} removed "
          f"(no longer in the projects); listed in {args.out / mwaa.MANIFEST}")
    print(f"for Apache Airflow {args.airflow_version} on Python {args.python_version}; "
          "see --help for the upload commands")
    return EXIT_OK


# `__package__` tells `python -m esteira` apart from a loader that imports this file by path
# under the name "__main__" (Airflow's plugin loader does, when .airflowignore is missing).
if __name__ == "__main__" and __package__ == "esteira":
    sys.exit(main())
