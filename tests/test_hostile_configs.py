"""The hostile-config corpus (tests/hostile_cases.py): "esteira validate passes" must mean that
both orchestrators accept the config and run it identically.

Everything is batched, so the corpus costs a handful of process starts, not a few per case:

1. every case is written as projects/<case id>/config.yaml in ONE folder, and `python -m esteira
   validate` runs once; its output is split per project (stdout `ok  <name>: ...`, stderr
   `<file>:<line>: <field path>: <message>`);
2. every project validate accepted is copied to a second folder, where
   * Airflow's DagBag parses the real dags/ folder once per backend (local; ecs for prd),
   * `python -m asl_export --all --env prd` runs once,
   * statelint, asl-validator (both over every state machine) and cfn-lint (over every stack)
     run at once, side by side, and their findings are attributed to projects by path,
   * `python -m asl_export <project> --env prd --deploy` runs in this process against a stand-in
     for AWS that records what would reach CloudFormation: a template inline (at most 51,200
     bytes) or uploaded (1 MB), IAM inline policies within 10,240 characters a role, no
     schedule StartDate in the past; schedules.json must carry start_date as StartDate,
   * each step's EcsRunTaskOperator is rendered as Airflow renders it when the task starts and
     compared, byte for byte, with the ASL Task state's container overrides.

Each case is its own test id in each check, so a failure names the case; REFUSE cases that
validate wrongly accepts also show what breaks later.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import zoneinfo
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
import yaml
from hostile_cases import ACCEPT, BY_ID, CASES, REFUSE, Case

from asl_fixtures import task_parameters
from conftest import DAGS, PROJECTS, REPO

BIN = Path(sys.executable).parent
NODE_BIN = REPO / "node_modules" / ".bin" / "asl-validator"
ENV = "prd"
ACCOUNT = "222222222222"  # prd's account in projects/environments.yaml
INLINE_TEMPLATE_LIMIT = 51_200  # CloudFormation's TemplateBody limit (shared/NOTES.md)
# "The size of each inline policy (aggregate for a role) cannot exceed 10,240 characters" (IAM quotas)
IAM_INLINE_POLICY_LIMIT = 10_240
# the run identity the Airflow side is rendered with; the ASL reads the same from $.esteira
LOGICAL_DATE = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
RUN_DATE = "2026-11-24T03:00:00Z"
RUN_ID = "scheduled__2026-11-24T03:00:00+00:00"
# what a scheduled run reads from the state machine's input (an S3 trigger's object: none, empty)
RUN_PATHS = {"$.esteira.run_date": RUN_DATE, "$.esteira.run_id": RUN_ID,
             "$.esteira.trigger_bucket": "", "$.esteira.trigger_key": ""}
_PROBLEM = re.compile(r"^\s*(?P<file>\S*?/(?P<name>[^/\s]+)/config\.yaml)(?::(?P<line>\d+))?: (?P<rest>.*)$")


# --- stage 1: one validate over the whole corpus ---------------------------------------------

@dataclass
class Validation:
    root: Path
    returncode: int
    stdout: str
    stderr: str
    ok: set[str] = field(default_factory=set)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def _write_corpus(root: Path) -> None:
    root.mkdir(parents=True)
    shutil.copy(PROJECTS / "environments.yaml", root / "environments.yaml")
    for case in CASES:
        folder = root / case.id
        folder.mkdir()
        (folder / "config.yaml").write_bytes(case.text().encode("utf-8", "surrogateescape"))


@pytest.fixture(scope="session")
def validation(tmp_path_factory: pytest.TempPathFactory) -> Validation:
    root = tmp_path_factory.mktemp("hostile") / "projects"
    _write_corpus(root)
    result = subprocess.run([sys.executable, "-m", "esteira", "validate", "--projects-dir", str(root)],
                            capture_output=True, text=True, cwd=REPO)
    found = Validation(root, result.returncode, result.stdout, result.stderr)
    for line in result.stdout.splitlines():
        if line.startswith("ok  "):
            found.ok.add(line[4:].split(":", 1)[0])
    last: str | None = None
    for line in result.stderr.splitlines():
        match = _PROBLEM.match(line)
        if match and line.startswith("  "):  # a problem line; "<file>: N problem(s)" heads them
            last = match["name"]
            found.problems[last].append(line.strip())
        elif match:
            last = match["name"]
        elif last is not None and line.strip():  # a message that went on over several lines
            found.problems[last].append(line.strip())
    return found


def problem_matches(line: str, path: str, words: tuple[str, ...]) -> bool:
    """The problem line's field path is `path` (or inside it) and its message holds every word."""
    match = _PROBLEM.match(line)
    if not match:
        return False
    location, _, message = match["rest"].partition(": ")
    if not (location == path or location.startswith((path + ".", path + "["))):
        return False
    text = message.casefold()
    return all(any(alt.casefold() in text for alt in word.split("|")) for word in words)


# --- stage 2: everything validate accepted, downstream ----------------------------------------

@dataclass
class Downstream:
    root: Path
    out: Path
    export: subprocess.CompletedProcess[str] | None = None
    issues: dict[str, dict[str, list[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    dags: dict[str, dict[str, Any]] = field(default_factory=dict)  # backend -> {dag_id: DAG}
    import_errors: dict[str, dict[str, str]] = field(default_factory=dict)
    tool_failures: list[str] = field(default_factory=list)

    def add(self, name: str, stage: str, text: str) -> None:
        self.issues[name][stage].append(" ".join(text.split())[:600])

    def machine(self, name: str) -> Path:
        return self.out / ENV / name / "state_machine.asl.json"


def _attribute(text: str, out: Path) -> dict[str, list[str]]:
    """Lines of a tool's output, by the project whose exported file they name."""
    found: dict[str, list[str]] = defaultdict(list)
    prefix = f"{out / ENV}/"
    for line in text.splitlines():
        if prefix in line:
            name = line.split(prefix, 1)[1].split("/", 1)[0]
            found[name].append(line.replace(prefix, ""))
    return found


def _export(down: Downstream, names: list[str]) -> None:
    """ONE asl_export --all; when it refuses some projects, the rest are exported again without them
    (so that one failure does not hide the others), and each refusal is kept for its case."""
    cmd = [sys.executable, "-m", "asl_export", "--all", "--env", ENV, "--projects-dir", str(down.root),
           "--out", str(down.out)]
    down.export = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if down.export.returncode == 0:
        return
    refused = set()
    for line in down.export.stderr.splitlines():
        match = _PROBLEM.match(line)
        if match and match["name"] in names:
            refused.add(match["name"])
            down.add(match["name"], "asl_export", line.strip())
    for name in refused:
        shutil.move(str(down.root / name), str(down.root.parent / f"refused-{name}"))
    if refused and len(refused) < len(names):
        again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if again.returncode != 0:
            for name in names:
                if name not in refused:
                    down.add(name, "asl_export", f"the export of the others failed too: {again.stderr[-400:]}")


def _start_linters(down: Downstream) -> list[tuple[str, subprocess.Popen[str]]]:
    machines = sorted(str(p) for p in (down.out / ENV).glob("*/state_machine.asl.json"))
    stacks = sorted(str(p) for p in (down.out / ENV).glob("*/stack.cfn.json"))
    procs: list[tuple[str, subprocess.Popen[str]]] = []

    def start(stage: str, argv: list[str]) -> None:
        procs.append((stage, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                              cwd=REPO)))

    if machines:
        start("statelint", [str(BIN / "statelint"), *machines])
        start("asl-validator", [str(NODE_BIN), *[a for f in machines for a in ("--json-path", f)]])
    for half in (stacks[::2], stacks[1::2]):  # cfn-lint is the slow one: two processes
        if half:
            start("cfn-lint", [str(BIN / "cfn-lint"), "--format", "parseable", *half])
    return procs


def _collect_linters(down: Downstream, procs: list[tuple[str, subprocess.Popen[str]]]) -> None:
    for stage, proc in procs:
        out, err = proc.communicate(timeout=600)
        found = 0
        if stage == "statelint":  # "<file>" then "N errors:" then " <error>" lines, on stdout
            current: dict[str, list[str]] = {}
            for line in out.splitlines():
                if not line.startswith(" ") and line.endswith(".json"):
                    current = _attribute(line, down.out)
                elif line.startswith(" "):
                    for name in current:
                        down.add(name, stage, line.strip())
                        found += 1
        elif stage == "asl-validator":
            found = _asl_validator_findings(down, proc.args, out, err)
        else:  # cfn-lint --format parseable: <file>:<line>:<col>:<line>:<col>:<rule>:<message>
            for name, lines in _attribute(out, down.out).items():
                for line in lines:
                    down.add(name, stage, line)
                    found += 1
        if proc.returncode and not found:
            down.tool_failures.append(f"{stage} exited {proc.returncode} naming no file:\n{(out + err)[-2000:]}")


def _asl_validator_findings(down: Downstream, argv: list[str], out: str, err: str) -> int:
    """asl-validator prints '✓ ... definition "<file>" is valid' on stdout, and '✕ ... "<file>" is
    invalid:' then one " <error>" line each on stderr. An exception inside it ("Validator exception")
    ends the whole run: the file it was on gets the exception, and the files after it a run of their own."""
    files = argv[2::2]
    found = 0
    while True:
        judged = set(re.findall(r'definition "([^"]+)" is (?:valid|invalid)', out + err))
        invalid: str | None = None
        for line in err.splitlines():
            verdict = re.search(r'definition "(?P<file>[^"]+)" is invalid', line)
            if verdict:
                invalid = next(iter(_attribute(verdict["file"], down.out)), None)
            elif invalid and line.startswith(" ") and not line.lstrip().startswith("at "):
                down.add(invalid, "asl-validator", line.strip())
                found += 1
            else:  # "Validator exception: ..." and its stack trace belong to no verdict
                invalid = None
        rest = [f for f in files if f not in judged]
        if not rest or "Validator exception" not in err:
            return found
        crash = err[err.index("Validator exception"):].splitlines()[0]
        for name in _attribute(rest[0], down.out):
            down.add(name, "asl-validator", f"asl-validator crashes on this machine: {crash}")
            found += 1
        files = rest[1:]
        if not files:
            return found
        again = subprocess.run([argv[0], *[a for f in files for a in ("--json-path", f)]], capture_output=True,
                               text=True, cwd=REPO)
        out, err = again.stdout, again.stderr


def _parse_dags(down: Downstream, backend: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    saved = {k: os.environ.get(k) for k in ("ESTEIRA_PROJECTS_DIR", "ESTEIRA_BACKEND", "ESTEIRA_ENV")}
    os.environ.update({"ESTEIRA_PROJECTS_DIR": str(down.root), "ESTEIRA_BACKEND": backend, "ESTEIRA_ENV": ENV})
    try:
        bag = DagBag(dag_folder=str(DAGS))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    down.dags[backend] = dict(bag.dags)
    down.import_errors[backend] = dict(bag.import_errors)


def _check_dag(down: Downstream, name: str, backend: str) -> None:
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    stage = f"airflow-{backend}"
    dag = down.dags[backend].get(name)
    if dag is None:
        down.add(name, stage, f"no DAG {name!r} in the DagBag")
        return
    if "esteira:config-error" in dag.tags:
        down.add(name, stage, f"error DAG: {dag.doc_md}")
        return
    try:  # what the DAG processor does with every DAG it parsed
        serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    except Exception as exc:
        down.add(name, stage, f"Airflow cannot serialise the DAG: {type(exc).__name__}: {exc}")
        return
    if type(serialized.timetable).__name__ == "EsteiraTimetable":
        try:  # as a backfill asks (a DAG that Step Functions schedules answers nothing else)
            info = serialized.timetable.next_dagrun_info(
                last_automated_data_interval=None,
                restriction=TimeRestriction(earliest=dag.start_date, latest=pendulum.datetime(3100, 1, 1),
                                            catchup=True))
        except Exception as exc:
            down.add(name, stage, f"the timetable cannot plan a run: {type(exc).__name__}: {exc}")
        else:
            if info is None:
                down.add(name, stage, "the timetable never plans a run")


class _FakeAws:
    """boto3.Session as `asl_export --deploy` uses it: the account is prd's, no stack exists yet, and
    CloudFormation answers each change set with "no changes" after recording it (and its upload)."""

    def __init__(self, **_: Any) -> None:
        self.change_sets: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        _FakeAws.last = self

    last: _FakeAws | None = None

    def client(self, service: str, **_: Any) -> Any:
        from botocore.exceptions import ClientError

        aws = self

        class Client:
            meta = SimpleNamespace(region_name="us-east-1")

            def get_caller_identity(self) -> dict[str, str]:
                return {"Account": ACCOUNT}

            def describe_stacks(self, StackName: str) -> dict[str, Any]:
                raise ClientError({"Error": {"Code": "ValidationError",
                                             "Message": f"Stack with id {StackName} does not exist"}}, "DescribeStacks")

            def create_change_set(self, **request: Any) -> dict[str, str]:
                aws.change_sets.append(request)
                return {"Id": f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:changeSet/{request['ChangeSetName']}/1",
                        "StackId": f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/{request['StackName']}/1"}

            def describe_change_set(self, **_: Any) -> dict[str, str]:
                return {"Status": "FAILED", "StatusReason": "The submitted information didn't contain changes."}

            def get_waiter(self, name: str) -> Any:
                """botocore's change_set_create_complete on a FAILED change set: a terminal failure."""
                from botocore.exceptions import WaiterError

                def wait(**_: Any) -> None:
                    raise WaiterError(name=name, reason="Waiter encountered a terminal failure state",
                                      last_response=self.describe_change_set())

                return SimpleNamespace(wait=wait)

            def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, str]:
                aws.uploads[Key] = Body
                return {}

            def get_bucket_notification_configuration(self, Bucket: str) -> dict[str, Any]:
                """A trigger's bucket, set up as the README says: it sends its events to EventBridge."""
                return {"EventBridgeConfiguration": {}}

            def __getattr__(self, _name: str) -> Any:
                return lambda *a, **k: {}

        return Client()


def _resolved(value: Any) -> Any:
    """A policy as IAM receives it, near enough: pseudo parameters substituted, references as ARNs."""
    if isinstance(value, dict):
        if "Fn::Sub" in value:
            return (value["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${AWS::Region}", "us-east-1")
                    .replace("${AWS::AccountId}", ACCOUNT))
        if "Ref" in value or "Fn::GetAtt" in value:
            return f"arn:aws:service:us-east-1:{ACCOUNT}:resource/{'x' * 40}"
        return {k: _resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


def _check_deploy(down: Downstream, name: str) -> None:
    """`python -m asl_export <project> --env prd --deploy`, in this process, against _FakeAws: what
    reaches CloudFormation must be a request it takes."""
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO
    from unittest import mock

    from asl_export.cli import main

    out, err = StringIO(), StringIO()
    with mock.patch("boto3.Session", _FakeAws), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([name, "--env", ENV, "--projects-dir", str(down.root), "--out", str(down.out / "deployed"),
                         "--deploy"])
        except BaseException as exc:
            code = f"{type(exc).__name__}: {exc}"
    aws = _FakeAws.last
    if code != 0 or aws is None or not aws.change_sets:
        down.add(name, "deploy", f"exit {code}: {err.getvalue()[-500:] or out.getvalue()[-500:]}")
        return
    request = aws.change_sets[-1]
    if "TemplateBody" in request:
        body = request["TemplateBody"].encode()
        if len(body) > INLINE_TEMPLATE_LIMIT:
            down.add(name, "deploy", f"TemplateBody of {len(body)} bytes; CloudFormation takes {INLINE_TEMPLATE_LIMIT} inline")
    else:
        key = request.get("TemplateURL", "").split(".amazonaws.com/", 1)[-1]
        body = aws.uploads.get(key, b"")
        if not body:
            down.add(name, "deploy", f"TemplateURL {request.get('TemplateURL')!r} names nothing uploaded")
            return
        if len(body) > 1_000_000:  # a template from S3: 1 MB (CloudFormation quotas; cfn-lint E1002)
            down.add(name, "deploy", f"template of {len(body)} bytes; CloudFormation takes 1 MB from S3")
    now = dt.datetime.now(dt.UTC)
    sent = json.loads(body)
    for role, resource in sent["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            size = sum(len(json.dumps(_resolved(p["PolicyDocument"]), separators=(",", ":")))
                       for p in resource["Properties"].get("Policies", []))
            if size > IAM_INLINE_POLICY_LIMIT:
                down.add(name, "deploy", f"{role}: inline policies of ~{size} characters; IAM takes "
                                         f"{IAM_INLINE_POLICY_LIMIT} per role")
    for resource in sent["Resources"].values():
        start = resource.get("Properties", {}).get("StartDate") if resource["Type"] == "AWS::Scheduler::Schedule" else None
        if start and dt.datetime.fromisoformat(start.replace("Z", "+00:00")) < now:
            # "The StartDate you specify cannot be earlier than 5 minutes ago" (CreateSchedule; moto #8172)
            down.add(name, "deploy", f"the schedule's StartDate {start} is past: EventBridge Scheduler refuses it")


def _check_schedules(down: Downstream, name: str) -> None:
    """The schedule starts no earlier than Airflow's start_date, in the zone the config names."""
    config = yaml.load((down.root / name / "config.yaml").read_text(encoding="utf-8-sig"), Loader=yaml.CSafeLoader)
    sched = config["schedule"]
    [request] = json.loads((down.out / ENV / name / "schedules.json").read_text())
    zone = sched.get("timezone", "UTC")
    if request.get("ScheduleExpressionTimezone") != zone:
        down.add(name, "schedules", f"ScheduleExpressionTimezone {request.get('ScheduleExpressionTimezone')!r}, "
                                    f"config {zone!r}")
    if len(request["ScheduleExpression"]) > 256:
        down.add(name, "schedules", f"ScheduleExpression is {len(request['ScheduleExpression'])} characters; "
                                    "EventBridge Scheduler takes 256")
    start = sched.get("start_date")
    if start is None:
        return
    start = dt.date.fromisoformat(str(start))
    first = dt.datetime(start.year, start.month, start.day, tzinfo=zoneinfo.ZoneInfo(zone))
    given = request.get("StartDate")
    now = dt.datetime.now(dt.UTC)
    if first > now:
        if given is None:
            down.add(name, "schedules", f"no StartDate: EventBridge fires before start_date {start} "
                                        "(Airflow waits for it)")
        elif dt.datetime.fromisoformat(str(given).replace("Z", "+00:00")) != first:
            down.add(name, "schedules", f"StartDate {given} is not start_date {start} 00:00 {zone} "
                                        f"({first.astimezone(dt.UTC).isoformat()})")


def _states(definition: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every state by name, Parallel branches included, and the names used more than once."""
    found: dict[str, dict[str, Any]] = {}
    duplicates: list[str] = []

    def visit(states: dict[str, Any]) -> None:
        for state_name, state in states.items():
            if state_name in found:
                duplicates.append(state_name)
            found[state_name] = state
            for branch in state.get("Branches", []):
                visit(branch["States"])

    visit(definition["States"])
    return found, duplicates


def _check_machine(down: Downstream, name: str) -> dict[str, dict[str, Any]]:
    states, duplicates = _states(json.loads(down.machine(name).read_text()))
    if duplicates:
        down.add(name, "asl", f"state names used twice: {duplicates[:5]}")
    long_names = [s for s in states if len(s) > 80]
    if long_names:
        down.add(name, "asl", f"state names over 80 characters: {long_names[:3]}")
    return states


def _context(dag: Any, task: Any) -> dict[str, Any]:
    """What Airflow's task runner hands render_template_fields (the parts a template may read)."""
    dag_run = SimpleNamespace(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_id=RUN_ID,
                              data_interval_start=LOGICAL_DATE, data_interval_end=LOGICAL_DATE, conf={})
    return {"dag": dag, "task": task, "dag_run": dag_run, "run_id": RUN_ID, "logical_date": LOGICAL_DATE,
            "ds": "2026-11-24", "ds_nodash": "20261124", "ts": LOGICAL_DATE.isoformat(), "params": {},
            "var": {"value": {}, "json": {}}, "conn": {}, "macros": SimpleNamespace()}


def _env_pairs_asl(environment: list[dict[str, str]]) -> list[tuple[str, str]]:
    pairs = []
    for entry in environment:
        if "Value.$" in entry:
            path = entry["Value.$"]
            pairs.append((entry["Name"], RUN_PATHS.get(path, f"<read at run time from {path}>")))
        else:
            pairs.append((entry["Name"], entry.get("Value", "<no value>")))
    return sorted(pairs)


def _check_parity(down: Downstream, name: str, states: dict[str, dict[str, Any]]) -> None:
    dag = down.dags["ecs"].get(name)
    if dag is None or "esteira:config-error" in dag.tags or not states:
        down.add(name, "parity", "nothing to compare (no ecs DAG or no state machine)")
        return
    tasks = {s: st for s, st in states.items() if st.get("Type") == "Task" and "ecs:runTask" in st.get("Resource", "")}
    if set(tasks) != set(dag.task_ids):
        down.add(name, "parity", f"ASL tasks {sorted(set(tasks) ^ set(dag.task_ids))[:5]} differ from the DAG's")
    jinja_env = dag.get_template_env()  # one for the DAG, as the task runner builds one per task
    definition = json.loads(down.machine(name).read_text())  # once: what the tasks read from `esteira.shared`
    for task in dag.tasks:
        state = tasks.get(task.task_id)
        if state is None:
            continue
        try:
            task.render_template_fields(_context(dag, task), jinja_env)
        except Exception as exc:
            down.add(name, "parity", f"{task.task_id}: Airflow cannot render the task: {type(exc).__name__}: {exc}")
            continue
        af = task.overrides["containerOverrides"][0]
        asl = task_parameters(definition, state)["Overrides"]["ContainerOverrides"][0]
        if list(af["command"]) != list(asl["Command"]):
            down.add(name, "parity", f"{task.task_id}: command Airflow {af['command']!r} vs ASL {asl['Command']!r}")
        af_env = sorted((e["name"], e["value"]) for e in af["environment"])
        asl_env = _env_pairs_asl(asl["Environment"])
        if af_env != asl_env:
            only_af = sorted(set(af_env) - set(asl_env))
            only_asl = sorted(set(asl_env) - set(af_env))
            down.add(name, "parity", f"{task.task_id}: environment Airflow-only {only_af!r} vs ASL-only {only_asl!r}")
        for key in ("cpu", "memory"):
            if af.get(key) != asl.get(key.capitalize()):
                down.add(name, "parity", f"{task.task_id}: {key} Airflow {af.get(key)!r} vs ASL {asl.get(key.capitalize())!r}")


def _guard(down: Downstream, name: str, stage: str, check: Any, *args: Any) -> Any:
    """Run one check of one case; a crash of the check is that case's finding, not the session's."""
    try:
        return check(down, *args)
    except Exception as exc:
        down.add(name, stage, f"the check crashed: {type(exc).__name__}: {exc}")
        return None


@pytest.fixture(scope="session")
def downstream(validation: Validation) -> Iterator[Downstream]:
    base = validation.root.parent
    down = Downstream(base / "accepted", base / "out")
    down.root.mkdir()
    shutil.copy(PROJECTS / "environments.yaml", down.root / "environments.yaml")
    names = sorted(validation.ok)
    for name in names:
        shutil.copytree(validation.root / name, down.root / name)
    if names:
        _export(down, names)
        procs = _start_linters(down)  # they run while Airflow parses, in this process
        try:
            for backend in ("local", "ecs"):
                _parse_dags(down, backend)
            exported = {p.parent.name for p in (down.out / ENV).glob("*/stack.cfn.json")}
            for name in names:
                for backend in ("local", "ecs"):
                    _guard(down, name, f"airflow-{backend}", _check_dag, name, backend)
                if name not in exported:
                    if name not in down.issues or "asl_export" not in down.issues[name]:
                        down.add(name, "asl_export", "no files exported")
                    continue
                _guard(down, name, "deploy", _check_deploy, name)
                _guard(down, name, "schedules", _check_schedules, name)
                states = _guard(down, name, "asl", _check_machine, name) or {}
                _guard(down, name, "parity", _check_parity, name, states)
        finally:
            _collect_linters(down, procs)
    yield down


def _report(issues: dict[str, list[str]], stages: tuple[str, ...] | None = None) -> str:
    return "\n".join(f"  {stage}: {line}" for stage, lines in issues.items()
                     if stages is None or stage in stages for line in lines[:6])


# --- the checks -------------------------------------------------------------------------------

def test_the_corpus_is_large_and_both_ways() -> None:
    assert len(CASES) >= 110
    assert len(ACCEPT) >= 40 and len(REFUSE) >= 40
    for case in CASES:
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,39}", case.id), case.id


def test_validate_never_shows_a_traceback(validation: Validation) -> None:
    assert "Traceback" not in validation.stdout + validation.stderr
    assert validation.returncode == 2  # the corpus holds REFUSE cases


def _params(cases: list[Case]) -> list[Any]:
    """Case ids; a known gap is a strict xfail naming the issue that closes it (it fails once fixed)."""
    return [pytest.param(c.id, marks=pytest.mark.xfail(strict=True, reason=c.known_gap)) if c.known_gap else c.id
            for c in cases]


@pytest.mark.parametrize("case_id", _params(CASES))
def test_validate_verdict(validation: Validation, downstream: Downstream, case_id: str) -> None:
    case: Case = BY_ID[case_id]
    lines = validation.problems.get(case_id, [])
    if case.accept:
        assert case_id in validation.ok, ("validate refuses a config it should accept:\n"
                                          + ("\n".join(lines) or validation.stderr[-1500:]))
        return
    path, words = case.refuse  # type: ignore[misc]
    if case_id in validation.ok:
        later = _report(downstream.issues.get(case_id, {})) or "  (nothing downstream caught it either)"
        pytest.fail(f"validate accepts it; expected a problem at {path!r} with {words!r}. Later:\n{later}")
    assert lines, f"validate neither accepts nor reports {case_id}/config.yaml:\n{validation.stderr[-1500:]}"
    assert any(problem_matches(line, path, words) for line in lines), (
        f"no problem line at {path!r} holding {words!r}:\n" + "\n".join(lines))


def _accepted(validation: Validation, case_id: str) -> None:
    if case_id not in validation.ok:
        pytest.skip("validate refused it (see test_validate_verdict)")


@pytest.mark.parametrize("case_id", [c.id for c in ACCEPT])
def test_airflow_parses_both_backends(validation: Validation, downstream: Downstream, case_id: str) -> None:
    _accepted(validation, case_id)
    for backend in ("local", "ecs"):
        assert not downstream.import_errors[backend], downstream.import_errors[backend]
    issues = _report(downstream.issues.get(case_id, {}), ("airflow-local", "airflow-ecs"))
    assert not issues, "\n" + issues


@pytest.mark.parametrize("case_id", [c.id for c in ACCEPT])
def test_export_validators_and_deploy(validation: Validation, downstream: Downstream, case_id: str) -> None:
    _accepted(validation, case_id)
    issues = _report(downstream.issues.get(case_id, {}),
                     ("asl_export", "asl", "statelint", "asl-validator", "cfn-lint", "schedules", "deploy"))
    assert not issues, "\n" + issues


@pytest.mark.parametrize("case_id", [c.id for c in ACCEPT])
def test_airflow_and_step_functions_run_the_same_step(
    validation: Validation, downstream: Downstream, case_id: str,
) -> None:
    _accepted(validation, case_id)
    if "asl_export" in downstream.issues.get(case_id, {}):
        pytest.skip("not exported (see test_export_validators_and_deploy)")
    issues = _report(downstream.issues.get(case_id, {}), ("parity",))
    assert not issues, "\n" + issues


def test_the_validators_ran_over_every_file(downstream: Downstream) -> None:
    assert not downstream.tool_failures, "\n".join(downstream.tool_failures)


def test_one_export_of_everything_validate_accepts(validation: Validation, downstream: Downstream) -> None:
    assert downstream.export is not None
    assert "Traceback" not in downstream.export.stdout + downstream.export.stderr
    assert downstream.export.returncode == 0, downstream.export.stderr[-3000:]
