"""`esteira validate | export | deploy | schema | mwaa-bundle | dag-files | backfill | rerun | trigger`
(or `python -m esteira ...`): one command line
on one load + compile path.

Both run where CI or a pre-commit hook does, with only the core installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from esteira import dag_files, mwaa
from esteira.backfill import BackfillRun
from esteira.compile import check_project, compile_aws
from esteira.compile_cache import CompileCache, cache_key, code_fingerprint
from esteira.config import CONFIG_FILE, load_project
from esteira.discovery import LoadFailure, discover, project_files
from esteira.environments import ENV_NAMES, Environments, load_environments
from esteira.errors import ConfigError, unexpected_error
from esteira.plan import Plan, Target
from esteira.schema import SCHEMA_FILE, schema_text
from esteira.settings import Settings
from esteira.yaml_source import read_config_bytes

EXIT_OK, EXIT_BAD = 0, 2
_PROJECTS_HELP = "folder of <project>/config.yaml (default: ESTEIRA_PROJECTS_DIR, else the repo's projects/)"

_BUNDLE_LAYOUT = (
    ("<out>/dags/esteira_dags*.py", "the DAG files (esteira dag-files: 200 projects a file)"),
    (f"<out>/dags/{mwaa.PROJECTS_FOLDER}/", "the projects folder with its environments.yaml; esteira"),
    ("", "the DAG files beside it find it without ESTEIRA_PROJECTS_DIR"),
    ("<out>/dags/.airflowignore", f"keeps the DAG processor out of {mwaa.PROJECTS_FOLDER}/"),
    ("<out>/plugins.zip", "esteira's wheel (built from this checkout) and esteira_plugin.py,"),
    ("", "which registers esteira's timetable; MWAA unpacks it into"),
    ("", f"{mwaa.MWAA_PLUGINS_FOLDER}"),
    ("<out>/requirements.txt", "Airflow's --constraint line, the amazon provider and the wheel"),
    ("", f"by its path there ({mwaa.MWAA_PLUGINS_FOLDER}/esteira-*.whl):"),
    ("", "pip installs esteira with the dependencies it declares"),
)
_BUNDLE_DESCRIPTION = "\n".join([
    "Build what an Amazon MWAA environment deploys from its S3 bucket, after checking every",
    "project as `validate` does (nothing is written when one is invalid):",
    "",
    *(f"  {path:<34}{what}" for path, what in _BUNDLE_LAYOUT),
    "",
    "Building the wheel needs a checkout of esteira's repo, pip and setuptools, and no network.",
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
    backfill = sub.add_parser(
        "backfill",
        help="run a project on AWS for past cron instants: one Step Functions execution per instant",
        description="Start one Step Functions execution per cron instant in [--from, --to], the very "
                    "instants Airflow's backfill of the same range runs (airflow backfill create "
                    "--from-date --to-date), oldest first. Each gets RUN_DATE = its instant and RUN_ID = "
                    "backfill__<instant>, as in Airflow, and is named backfill-<instant>: running the "
                    "command again starts nothing twice. Needs credentials of the environment's account.",
        epilog="Bounds are inclusive; a bare date is midnight UTC, as in Airflow (so --to 2026-11-22 does "
               "not include 03:00 that day). exit codes: 0 done (or planned, with --dry-run); 1 an "
               "execution failed or AWS refused a call; 2 invalid config or bad usage.",
    )
    backfill.add_argument("project", metavar="PROJECT")
    backfill.add_argument("--from", dest="from_", required=True, metavar="DATE",
                          help="first instant (YYYY-MM-DD or an ISO 8601 date-time; UTC unless it says otherwise)")
    backfill.add_argument("--to", required=True, metavar="DATE", help="last instant, inclusive (same forms)")
    backfill.add_argument("--env", choices=ENV_NAMES, default="dev", help="AWS environment (default dev)")
    backfill.add_argument("--projects-dir", type=Path, metavar="DIR", help=_PROJECTS_HELP)
    backfill.add_argument("--dry-run", action="store_true",
                          help="print one line per execution (instant, execution name, input) and start nothing")
    backfill.add_argument("--max-concurrency", type=int, metavar="N",
                          help="executions running at once (default: the config's schedule.max_active_runs, "
                               "1 unless set: in order, each date after the one before, so scores use the "
                               "models earlier dates registered)")
    backfill.add_argument("--no-wait", action="store_true", help="return once the last one has started")
    rerun = sub.add_parser(
        "rerun",
        help="re-run a project's past cron instants on AWS: redrive a failed execution, else start a new one",
        description="Re-run the given instants (--run-date), or every instant whose latest execution failed "
                    "(--failed), oldest first. An instant's executions are its backfill, its earlier re-runs "
                    "and any execution whose input has its RUN_DATE (the schedule's). When the latest failed, "
                    "timed out or was aborted and Step Functions can redrive it (within 14 days), it is "
                    "redriven: only the states that did not succeed run again, with the same input. Otherwise "
                    "a new execution starts, named rerun-<instant>-<n> (n: one more than the instant's "
                    "earlier re-runs) with RUN_DATE = the instant and RUN_ID = rerun__<instant>__<n>. One "
                    "still running is followed, never doubled, so repeating the command is safe. Needs "
                    "credentials of the environment's account (--dry-run too: it reads the executions).",
        epilog="A bare date is midnight UTC, as in backfill; a --run-date that is not an instant of the "
               "project's cron is refused, naming the nearest instants. exit codes: 0 done, every execution "
               "succeeded (or planned, with --dry-run; started, with --no-wait); 1 an execution failed or AWS "
               "refused a call; 2 invalid config or bad usage.",
    )
    rerun.add_argument("project", metavar="PROJECT")
    which = rerun.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-date", action="append", metavar="INSTANT",
                       help="an instant of the project's cron to re-run (YYYY-MM-DD or an ISO 8601 date-time; "
                            "UTC unless it says otherwise); repeat it for more")
    which.add_argument("--failed", action="store_true",
                       help="re-run every instant whose latest execution failed, timed out or was aborted")
    rerun.add_argument("--from", dest="from_", metavar="DATE",
                       help="with --failed: first RUN_DATE (default: 14 days ago, the redrive window; same forms)")
    rerun.add_argument("--to", metavar="DATE", help="with --failed: last RUN_DATE, inclusive (default: now)")
    rerun.add_argument("--env", choices=ENV_NAMES, default="dev", help="AWS environment (default dev)")
    rerun.add_argument("--projects-dir", type=Path, metavar="DIR", help=_PROJECTS_HELP)
    rerun.add_argument("--environments-file", "--environments", dest="environments_file", type=Path,
                       metavar="FILE", help="environments file (default: <projects-dir>/environments.yaml)")
    rerun.add_argument("--dry-run", action="store_true",
                       help="print one line per instant (instant, action, execution name, input) and change nothing")
    rerun.add_argument("--max-concurrency", type=int, metavar="N",
                       help="executions running at once (default: the config's schedule.max_active_runs, 1 "
                            "unless set: in order, so scores use the models earlier dates registered)")
    rerun.add_argument("--no-wait", action="store_true", help="return once the last one has started")
    trigger = sub.add_parser(
        "trigger",
        help="run a project's DAG on this machine as if an S3 object had landed (its trigger block)",
        description="Run the project's DAG once through local Airflow (`airflow dags test`, the local "
                    "backend: every step as a process here) as the S3 trigger would start it for the object "
                    "s3://BUCKET/KEY: the steps get TRIGGER_BUCKET and TRIGGER_KEY, RUN_DATE is now and "
                    "RUN_ID the run's id. The key must be one the trigger's rule matches (its prefix and "
                    "suffix), so a run that works here is one an upload starts on AWS. Needs Airflow "
                    "installed (make setup).",
        epilog="exit codes: 0 the run succeeded; 1 it failed (the steps' logs say why); 2 invalid config, a "
               "project without a trigger block, a key the trigger would not match, or bad usage. Example: "
               f"{PROG} trigger recsys --key incoming/2026-11-24/sales.parquet",
    )
    trigger.add_argument("project", metavar="PROJECT")
    trigger.add_argument("--key", required=True, metavar="KEY",
                         help="the object's key, e.g. incoming/2026-11-24/sales.parquet (no leading '/')")
    trigger.add_argument("--bucket", metavar="BUCKET",
                         help="the object's bucket (default: the trigger's bucket, with {env} = local)")
    trigger.add_argument("--projects-dir", type=Path, metavar="DIR", help=_PROJECTS_HELP)
    trigger.add_argument("--environments-file", "--environments", dest="environments_file", type=Path,
                         metavar="FILE", help="environments file (default: <projects-dir>/environments.yaml)")
    trigger.add_argument("--dry-run", action="store_true",
                         help="print the values and the Airflow command, and run nothing")
    files = sub.add_parser(
        "dag-files",
        help="write the esteira DAG files Airflow parses, as many as the projects need",
        description=f"Make DAGS_FOLDER hold ceil(projects / --per-file) identical esteira DAG files "
                    f"({dag_files.DAG_FILE}, esteira_dags_001.py, ...). Airflow parses each file in its own "
                    "process, in parallel, and kills a parse that outlives dagbag_import_timeout (30 s): "
                    "each file builds only the projects whose folder name hashes to it, so no file's "
                    "parse grows past --per-file projects (~0.6 s at 200). The files present always "
                    "cover every project once; run this again when the number of projects grows.",
        epilog="exit codes: 0 written or up to date; 1 --check found the folder differs; 2 bad usage; "
               "3 the folder could not be written (a file, read-only, a DAG file's name taken by a folder).",
    )
    files.add_argument("--dags-folder", type=Path, metavar="DIR",
                       help="Airflow's DAG folder (default: AIRFLOW__CORE__DAGS_FOLDER, else ./dags)")
    files.add_argument("--projects-dir", type=Path, metavar="DIR", help=_PROJECTS_HELP)
    files.add_argument("--per-file", type=int, default=dag_files.PROJECTS_PER_FILE, metavar="N",
                       help=f"projects a DAG file holds at most on average (default {dag_files.PROJECTS_PER_FILE})")
    files.add_argument("--check", action="store_true", help="change nothing; exit 1 when the folder differs")
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
    """The package's one version (pyproject reads it from esteira.__version__ too), so a copy that
    is not pip-installed, as in MWAA's plugins.zip, says the same."""
    from esteira import __version__

    return __version__


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
    if args.command == "backfill":
        return _backfill(args, projects_dir, settings)
    if args.command == "rerun":
        return _rerun(args, projects_dir, settings)
    if args.command == "trigger":
        return _trigger(args, projects_dir, settings)
    if args.command == "mwaa-bundle":
        return _mwaa_bundle(args, projects_dir)
    if args.command == "dag-files":
        return _dag_files(args, projects_dir)
    env_file = args.environments or (projects_dir / "environments.yaml" if args.projects_dir
                                     else settings.environments_file)
    return EXIT_OK if _check_projects(projects_dir, env_file, quiet=False, cache_dir=settings.cache_dir) else EXIT_BAD


def _dag_files(args: argparse.Namespace, projects_dir: Path) -> int:
    import os

    from esteira.discovery import project_files

    if args.per_file < 1:
        print(f"{PROG} dag-files: error: --per-file must be at least 1, not {args.per_file}", file=sys.stderr)
        return EXIT_BAD
    folder = args.dags_folder or Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or "dags")
    projects = len(project_files(projects_dir))
    count = dag_files.files_needed(projects, args.per_file)
    if args.check:
        wrong = dag_files.differences(folder, count)
        for line in wrong:
            print(f"{folder}: {line}", file=sys.stderr)
        if wrong:
            print(f"{folder}: not the {count} esteira DAG file(s) {projects} projects need; run "
                  f"`{PROG} dag-files --dags-folder {folder}`", file=sys.stderr)
        return 1 if wrong else EXIT_OK
    try:
        written, removed = dag_files.sync(folder, count)
    except OSError as exc:
        print(f"{PROG} dag-files: error: cannot write the DAG files in {folder}: {exc}", file=sys.stderr)
        return 3
    print(f"{folder}: {count} esteira DAG file(s) for {projects} project(s), at most {args.per_file} a file "
          f"on average: {len(written)} written, {len(removed)} removed")
    return EXIT_OK


def _aws_plan(config: Path, env_file: Path, env: str) -> Plan | None:
    """The project's Plan on an AWS environment, compiled as the export does; None once the problem
    is printed (a config mistake never ends in a traceback)."""
    try:
        return compile_aws(load_project(config), Target.aws_env(load_environments(env_file), env)).plan
    except ConfigError as exc:
        print(exc, file=sys.stderr)
    except Exception as exc:
        print(unexpected_error(config, exc), file=sys.stderr)
    return None


def _backfill(args: argparse.Namespace, projects_dir: Path, settings: Settings) -> int:
    from esteira.backfill import parse_bound, plan_backfill

    prog = f"{PROG} backfill"
    env_file = projects_dir / "environments.yaml" if args.projects_dir else settings.environments_file
    try:
        start, end = parse_bound(args.from_), parse_bound(args.to)
    except ValueError as exc:
        print(f"{prog}: error: --from/--to: {exc} (write YYYY-MM-DD or an ISO 8601 date-time)", file=sys.stderr)
        return EXIT_BAD
    if start > end or (args.max_concurrency is not None and args.max_concurrency < 1):
        print(f"{prog}: error: " + ("--from is after --to" if start > end else "--max-concurrency must be >= 1"),
              file=sys.stderr)
        return EXIT_BAD
    plan = _aws_plan(projects_dir / args.project / CONFIG_FILE, env_file, args.env)
    if plan is None:
        return EXIT_BAD
    runs = plan_backfill(plan.schedule.cron, plan.schedule.timezone, start, end)
    if not runs:
        print(f"no instant of '{plan.schedule.cron}' ({plan.schedule.timezone}) in {start.isoformat()} .. "
              f"{end.isoformat()} that has passed: nothing to run")
        return EXIT_OK
    if args.dry_run:
        for run in runs:
            print(f"{run.run_date}  {run.execution_name}  {json.dumps(run.execution_input())}")
        print(f"{len(runs)} execution(s) of {plan.names.state_machine} in {args.env} (dry run: none started)")
        return EXIT_OK
    return _start_backfill(plan, runs, args)


def _start_backfill(plan: Plan, runs: list[BackfillRun], args: argparse.Namespace) -> int:
    import boto3

    from esteira.deploy import DeployError, check_account
    from esteira.stepfunctions_client import BackfillError, run_backfill

    aws = plan.aws
    assert aws is not None
    session = boto3.Session(region_name=aws.region)
    try:
        check_account(session, aws.account_id)
        result = run_backfill(session, plan.names.state_machine_arn(aws.region, aws.account_id), runs,
                              max_concurrency=args.max_concurrency or plan.schedule.max_active_runs,
                              wait=not args.no_wait,
                              say=lambda line: print(line, flush=True))
    except (DeployError, BackfillError) as exc:
        print(f"{PROG} backfill: {exc}", file=sys.stderr)
        return 1
    print(f"{len(result.started)} started, {len(result.existing)} already existed"
          + (f", {len(result.failed)} failed: {', '.join(result.failed)}" if result.failed else ""))
    return 1 if result.failed else EXIT_OK


def _rerun(args: argparse.Namespace, projects_dir: Path, settings: Settings) -> int:
    """Check the dates against the project's cron before any AWS call, then plan and carry out."""
    from esteira.backfill import parse_bound
    from esteira.rerun import REDRIVE_WINDOW, check_instant

    prog = f"{PROG} rerun"
    now = datetime.now(UTC)

    def bad(message: str) -> int:
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_BAD

    if not args.failed and (args.from_ or args.to):
        return bad("--from/--to go with --failed (--run-date names the instants itself)")
    if args.max_concurrency is not None and args.max_concurrency < 1:
        return bad("--max-concurrency must be >= 1")
    try:
        given = [parse_bound(text) for text in args.run_date or []]
        low = parse_bound(args.from_) if args.from_ else now - REDRIVE_WINDOW
        high = parse_bound(args.to) if args.to else now
    except ValueError as exc:
        return bad(f"{'--run-date' if args.run_date else '--from/--to'}: {exc} "
                   "(write YYYY-MM-DD or an ISO 8601 date-time)")
    if low > high:
        return bad("--from is after --to")
    env_file = args.environments_file or (projects_dir / "environments.yaml" if args.projects_dir
                                          else settings.environments_file)
    plan = _aws_plan(projects_dir / args.project / CONFIG_FILE, env_file, args.env)
    if plan is None:
        return EXIT_BAD
    cron, zone = plan.schedule.cron, plan.schedule.timezone
    try:
        instants = [check_instant(cron, zone, value, now) for value in given]
    except ValueError as exc:
        return bad(f"--run-date {exc}")
    return _start_rerun(plan, instants, (low, high), args)


def _start_rerun(plan: Plan, instants: list[datetime], failed_between: tuple[datetime, datetime],
                 args: argparse.Namespace) -> int:
    import boto3

    from esteira.deploy import DeployError, check_account
    from esteira.rerun import REDRIVE, SKIP, START, run_date_text
    from esteira.stepfunctions_client import StepFunctionsError, plan_rerun, run_rerun

    aws = plan.aws
    assert aws is not None
    machine = plan.names.state_machine
    arn = plan.names.state_machine_arn(aws.region, aws.account_id)
    session = boto3.Session(region_name=aws.region)
    try:
        check_account(session, aws.account_id)
        actions = (plan_rerun(session, arn, failed_between=failed_between) if args.failed
                   else plan_rerun(session, arn, instants=instants))
        if not actions:
            low, high = failed_between
            print(f"no execution of {machine} with RUN_DATE in {run_date_text(low)} .. {run_date_text(high)} "
                  "whose latest attempt failed: nothing to re-run")
            return EXIT_OK
        if args.dry_run:
            for action in actions:
                shown = action.why if action.action == SKIP else _one_line_json(action.execution_input)
                print(f"{action.run_date}  {action.action}  {action.execution_name}  {shown}")
            counts = {kind: sum(a.action == kind for a in actions) for kind in (REDRIVE, START, SKIP)}
            print(f"{counts[REDRIVE]} redrive(s), {counts[START]} start(s), {counts[SKIP]} already running, "
                  f"of {machine} in {args.env} (dry run: nothing changed)")
            return EXIT_OK
        result = run_rerun(session, arn, actions, max_concurrency=args.max_concurrency or plan.schedule.max_active_runs,
                           wait=not args.no_wait,
                           say=lambda line: print(line, flush=True))
    except (DeployError, StepFunctionsError) as exc:
        print(f"{PROG} rerun: {exc}", file=sys.stderr)
        return 1
    print(f"{len(result.redriven)} redriven, {len(result.started)} started, "
          f"{len(result.running) + len(result.existing)} already under way"
          + (f", {len(result.failed)} failed: {', '.join(result.failed)}" if result.failed else ""))
    return 1 if result.failed else EXIT_OK


def _trigger(args: argparse.Namespace, projects_dir: Path, settings: Settings) -> int:
    """Check the project, its trigger and the key as the rule would, then run the DAG locally with them."""
    import importlib.util
    import os
    import subprocess

    from esteira.plan import build_plan
    from esteira.s3_trigger import INPUT_TRIGGER_BUCKET, INPUT_TRIGGER_KEY, bucket_problem, key_problem

    prog = f"{PROG} trigger"
    env_file = args.environments_file or (projects_dir / "environments.yaml" if args.projects_dir
                                          else settings.environments_file)
    config = projects_dir / args.project / CONFIG_FILE
    if not config.is_file():
        known = ", ".join(sorted(p.parent.name for p in project_files(projects_dir))) or "none"
        print(f"{prog}: error: no project {args.project!r} in {projects_dir} (projects: {known})", file=sys.stderr)
        return EXIT_BAD
    try:
        plan = build_plan(load_project(config), Target.local(load_environments(env_file)))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD
    except Exception as exc:  # reported like any config mistake, never a traceback
        print(unexpected_error(config, exc), file=sys.stderr)
        return EXIT_BAD
    trigger = plan.trigger
    if trigger is None:
        print(f"{prog}: error: {config} has no trigger block; add one, e.g.\n  trigger:\n    s3:\n"
              "      bucket: my-landing-bucket\n      prefix: incoming/\n      suffix: .parquet", file=sys.stderr)
        return EXIT_BAD
    bucket = args.bucket or trigger.bucket
    problem = bucket_problem(bucket) or key_problem(args.key, trigger.prefix, trigger.suffix)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return EXIT_BAD
    conf = {INPUT_TRIGGER_BUCKET: bucket, INPUT_TRIGGER_KEY: args.key}
    command = [sys.executable, "-m", "airflow", "dags", "test", plan.names.dag_id, "--conf", json.dumps(conf)]
    print(f"{plan.project}: TRIGGER_BUCKET={bucket} TRIGGER_KEY={args.key} (RUN_DATE: now, RUN_ID: the run's id)")
    if args.dry_run:
        print(" ".join(command[:2] + [f"'{part}'" if " " in part or "{" in part else part for part in command[2:]]))
        return EXIT_OK
    if importlib.util.find_spec("airflow") is None:
        print(f"{prog}: error: Airflow is not installed in {sys.executable}; run make setup (or pip install "
              "'esteira[airflow]')", file=sys.stderr)
        return EXIT_BAD
    env = {**os.environ, "ESTEIRA_PROJECTS_DIR": str(projects_dir.resolve()), "ESTEIRA_BACKEND": "local",
           "ESTEIRA_ENVIRONMENTS_FILE": str(env_file.resolve())}
    done = subprocess.run(command, env=env, check=False)
    return EXIT_OK if done.returncode == 0 else 1


def _one_line_json(text: str) -> str:
    """An execution's input as backfill's dry run prints one (json.dumps), whatever spacing it was sent with."""
    try:
        return json.dumps(json.loads(text))
    except ValueError:
        return text


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


def _check_projects(projects_dir: Path, env_file: Path, *, quiet: bool, cache_dir: Path | None = None) -> bool:
    """Load every project and build its run spec for every target; print each problem (file:line).

    A project found valid before with the same bytes (its config, environments.yaml) and the same
    esteira is not compiled again: its verdict comes from the compile cache (esteira.compile_cache),
    so a pre-commit hook over thousands of projects pays only for the ones that changed.
    """
    cache = CompileCache(cache_dir)
    try:
        env_bytes: bytes | None = read_config_bytes(env_file)
    except ConfigError:
        env_bytes = None  # loading it below says what is wrong
    context = json.dumps(["validate", str(env_file.resolve())])
    raws: dict[Path, bytes | ConfigError] = {}
    for file in project_files(projects_dir):
        try:
            raws[file] = read_config_bytes(file)
        except ConfigError as exc:
            raws[file] = exc
    keys = {file: (f"{context} {file.absolute()}", cache_key(context, code_fingerprint(), raw, env_bytes))
            for file, raw in raws.items() if isinstance(raw, bytes)}
    verdicts = [(file, cache.get(*keys[file])) for file in keys] if env_bytes is not None else []
    hits = [(file, verdict) for file, verdict in verdicts if isinstance(verdict, dict)]
    if raws and len(hits) == len(raws):  # every project valid before, with these very bytes
        for file, verdict in hits:
            if not quiet:
                print(f"ok  {verdict['name']}: {verdict['steps']} steps ({file})")
        return True
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
    if not projects_dir.is_dir():
        for failure in discover(projects_dir):  # says the folder is missing
            if isinstance(failure, LoadFailure):
                print(failure.error, file=sys.stderr)
        return False
    for file, raw in raws.items():
        try:
            if isinstance(raw, ConfigError):
                raise raw
            project = load_project(file, raw)  # the very bytes the key holds
            if environments is not None:
                check_project(project, environments)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            ok = False
            continue
        except Exception as exc:  # one project's failure is reported, the others go on
            print(unexpected_error(file, exc), file=sys.stderr)
            ok = False
            continue
        if environments is not None and file in keys:
            cache.put(*keys[file], {"name": project.name, "steps": len(project.steps)})
        if not quiet:
            print(f"ok  {project.name}: {len(project.steps)} steps ({project.source})")
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
    count = sum(dag_files.is_dag_file(name.removeprefix(f"{mwaa.DAGS}/")) for name in dags)
    print(f"wrote {args.out / mwaa.DAGS}/ ({len(dags)} files: {count} esteira DAG file(s), .airflowignore, "
          f"{mwaa.PROJECTS_FOLDER}/)")
    shipped = ", ".join(mwaa.zip_names(files[mwaa.PLUGINS_ZIP]))
    print(f"wrote {args.out / mwaa.PLUGINS_ZIP} ({len(files[mwaa.PLUGINS_ZIP])} bytes: {shipped})")
    print(f"wrote {args.out / mwaa.REQUIREMENTS} ({len(files[mwaa.REQUIREMENTS])} bytes)")
    print(f"{len(done.written)} written, {len(done.unchanged)} already identical, {len(done.removed)} removed "
          f"(no longer in the projects); listed in {args.out / mwaa.MANIFEST}")
    print(f"for Apache Airflow {args.airflow_version} on Python {args.python_version}; "
          "see --help for the upload commands")
    return EXIT_OK


# `__package__` tells `python -m esteira` apart from a loader that imports this file by path
# under the name "__main__" (Airflow's plugin loader does, when .airflowignore is missing).
if __name__ == "__main__" and __package__ == "esteira":
    sys.exit(main())
