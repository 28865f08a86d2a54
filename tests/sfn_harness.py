"""Run an exported state machine in moto's Step Functions interpreter, with this module as the ECS agent.

The product's ASL runs as it is. Everything that makes moto 5.2.5 behave like AWS lives here
(never in plugins/), each patch with the AWS behaviour it restores:

* `_normalise_parameters` / `_normalise_response` are no-ops in moto, so ASL's PascalCase
  Parameters reach boto3 unconverted (KeyError 'Cluster', then 'Tasks'). Patched to convert with
  botocore's operation shapes through the class's own `_to_boto_request` / `_from_boto_response`.
* moto's `ecs:runTask` integration silently drops `CapacityProviderStrategy` and `Tags`, which
  AWS passes on. They are let through; the strategy the ASL asked for is recorded and swapped
  for `LaunchType: FARGATE` (moto has no container instances to place EC2-capacity tasks on).
  The tags stay: the agent reads the step from `esteira:step`.
* moto's `.sync` resolver takes any STOPPED task as success. AWS fails the state with
  `States.TaskFailed` (cause: the task's JSON description) when an essential container exits
  non-zero (aws/copilot-cli#3160 reports it from a maintainer's trials). The patched resolver does
  the same; `Execution(sync_fails_on_exit_code=False)` keeps moto's behaviour, to show that the
  machine's own exit-code check does not depend on it.
* A Parallel state re-raises a branch's error as a "custom" error name, and moto refuses custom
  names that begin with `States.`, so a branch failing with States.TaskFailed or States.Timeout
  crashes the interpreter. AWS fails the Parallel state with the branch's error.
* moto wraps the value of a definite JSONPath through an array element (`$.a[0].b`) in a list;
  AWS returns the node itself (reference paths name one node).
* moto hands `$$.Execution.StartTime` over as a datetime object and `$$.Execution.Name` as None
  when the caller gives no name; AWS gives an ISO 8601 string with milliseconds and `Z`, and
  names an unnamed execution with a UUID.
* moto's ECS backend is not thread-safe (DescribeTasks iterates the task dict a concurrent
  RunTask grows: "dictionary changed size during iteration"); its calls are serialised.
* moto decides whether DescribeTasks includes tags in state shared by all threads, so a
  concurrent describe without `include=TAGS` can strip them; the agent then looks again.
* Speed only: moto's `.sync` describes the task every 0.5 s (here 0.1 s), and it parses each
  definition twice with ANTLR, about 1 s each (here the validation's unused parse serves the run).
* moto's ECS has no agent: its tasks drift to STOPPED after a few describes, with exit code 0.
  Here they stay RUNNING until `EcsAgent` stops them with the exit code the test chose for that
  step and attempt, reported as `SubmitContainerStateChange` would (moto lacks that call).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from unittest import mock

import boto3
import botocore
import botocore.session
from botocore.model import ServiceModel, Shape
from moto import mock_aws
from moto.ecs.models import EC2ContainerServiceBackend, ecs_backends
from moto.moto_api import state_manager
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
    StateTaskServiceEcs,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from esteira.asl import render_state_machine, to_json
from esteira.plan import Plan

STEP_TAG = "esteira:step"  # the tag the run spec puts on every task (StepPlan.tags)
AGENT_POLL_SECONDS = 0.05
SYNC_POLL_SECONDS = 0.1  # how often .sync describes the task (moto: 0.5; AWS: longer still): test speed only
EXECUTION_TIMEOUT_SECONDS = 30.0
# RunTask parameters that AWS's optimized integration passes on and moto 5.2.5 drops
_ECS_PARAMETERS_MOTO_DROPS = frozenset({"CapacityProviderStrategy", "Tags"})
# a JSONPath that names one node: $.a.b[0].c (no wildcard, slice, filter, union or '..')
_DEFINITE_PATH = re.compile(r"^\$\$?(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])*$")

ExitCodes = Mapping[str, int | Sequence[int]]
"""step id -> the exit code of every attempt, or one per attempt (the last one repeats)."""


# --- what a run looked like ----------------------------------------------------------------

@dataclass
class TaskRun:
    """One ECS task the state machine started, i.e. one attempt of one step, as the agent saw it."""

    step: str
    attempt: int  # 0 for the first try
    task_arn: str
    started: float  # time.monotonic() when the agent first saw it RUNNING
    environment: dict[str, str]  # the container override's environment
    command: list[str]
    exit_code: int | None
    stopped: float | None = None  # time.monotonic() just before the agent stopped it
    stop: Any = None  # the scripted stop (failure_scripts.Stop) when the test gave one


@dataclass
class Notification:
    """One message published to the project's SNS topic, read back from a subscribed SQS queue."""

    subject: str
    message: dict[str, Any]


@dataclass
class ExecutionResult:
    status: str  # SUCCEEDED, FAILED, TIMED_OUT, or ABORTED when the harness gave up waiting
    name: str
    start_date: datetime
    runs: list[TaskRun]  # in start order
    notifications: list[Notification]
    history: list[dict[str, Any]]
    run_task_requests: list[dict[str, Any]]  # boto3-cased RunTask requests, as the ASL asked for them

    def runs_of(self, step: str) -> list[TaskRun]:
        return [r for r in self.runs if r.step == step]

    @property
    def steps_run(self) -> set[str]:
        return {r.step for r in self.runs}

    def first_start(self, step: str) -> float:
        return min(r.started for r in self.runs_of(step))

    def last_stop(self, step: str) -> float:
        stops = [r.stopped for r in self.runs_of(step)]
        assert stops and all(s is not None for s in stops), f"{step} did not stop"
        return max(s for s in stops if s is not None)

    def failures(self) -> list[dict[str, Any]]:
        """The failure events of the history, to say why a run did not end as expected."""
        return [{k: v for k, v in e.items() if k.endswith("EventDetails")} | {"type": e["type"]}
                for e in self.history if e["type"].endswith(("Failed", "TimedOut", "Aborted"))]


# --- moto patches --------------------------------------------------------------------------

@cache
def _service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


@cache
def _operation_names(service: str) -> dict[str, str]:
    """boto3 method name (run_task) -> API operation name (RunTask)."""
    return {botocore.xform_name(name): name for name in _service_model(service).operation_names}


def _operation_shape(task: StateTaskService, service: str | None, action: str | None, output: bool) -> Shape | None:
    service_name = task._get_boto_service_name(boto_service_name=service)
    operation = _operation_names(service_name)[task._get_boto_service_action(service_action_name=action)]
    model = _service_model(service_name).operation_model(operation)
    return model.output_shape if output else model.input_shape


def _normalise_parameters(self: StateTaskService, parameters: dict[str, Any], boto_service_name: str | None = None,
                          service_action_name: str | None = None) -> None:
    """ASL's PascalCase Parameters -> boto3's request casing, by the operation's input shape."""
    shape = _operation_shape(self, boto_service_name, service_action_name, output=False)
    if shape is not None:
        self._to_boto_request(parameters, shape)  # type: ignore[arg-type]


def _normalise_response(self: StateTaskService, response: Any, boto_service_name: str | None = None,
                        service_action_name: str | None = None) -> None:
    """boto3's camelCase response -> the PascalCase output Step Functions gives the state."""
    shape = _operation_shape(self, boto_service_name, service_action_name, output=True)
    if shape is not None:
        self._from_boto_response(response, shape)  # type: ignore[arg-type]


def _branch_error_name(error_name: str | None) -> ErrorName:
    """A Parallel state fails with its branch's error, States.* ones included."""
    if error_name and error_name.startswith("States."):
        return StatesErrorName.from_name(error_name)
    return CustomErrorName(error_name=error_name)


def aws_timestamp(value: datetime) -> str:
    """How AWS writes $$.Execution.StartTime: UTC, milliseconds, 'Z'."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _task_failed(task: StateTaskServiceEcs, env: Any, description: dict[str, Any]) -> FailureEventException:
    """The failure AWS's ecs:runTask.sync reports when an essential container exits non-zero."""
    return FailureEventException(FailureEvent(
        env=env,
        error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
        event_type=HistoryEventType.TaskFailed,
        event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
            error=StatesErrorNameType.StatesTaskFailed.to_name(), cause=json.dumps(description, default=str),
            resource=task._get_sfn_resource(), resourceType=task._get_sfn_resource_type())),
    ))


_ECS_LOCK = threading.RLock()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    """moto's ECS backend iterates dicts that a concurrent RunTask grows: one call at a time."""
    def call(*args: Any, **kwargs: Any) -> Any:
        with _ECS_LOCK:
            return method(*args, **kwargs)
    return call


@contextlib.contextmanager
def moto_like_aws(run_task_requests: list[dict[str, Any]], sync_fails_on_exit_code: bool = True) -> Iterator[None]:
    """Patch moto's Step Functions interpreter where it differs from AWS (see the module docstring).

    run_task_requests receives every RunTask request (boto3 casing) as the ASL asked for it,
    before the capacity provider strategy is swapped for FARGATE.
    """
    real_supported = StateTaskServiceEcs._get_supported_parameters
    real_eval_service_task = StateTaskServiceEcs._eval_service_task
    real_sync_resolver = StateTaskServiceEcs._build_sync_resolver
    real_environment = ExecutionWorker._get_evaluation_environment
    real_singleton = json_path._is_singleton_array_access
    real_parse = AmazonStateLanguageParser.parse
    unused_parses: dict[str, Any] = {}

    def supported(self: StateTaskServiceEcs) -> set[str] | None:
        params = real_supported(self)
        return None if params is None else params | _ECS_PARAMETERS_MOTO_DROPS

    def eval_service_task(self: StateTaskServiceEcs, env: Any, resource_runtime_part: Any,
                          normalised_parameters: dict[str, Any], state_credentials: Any) -> None:
        if self._get_boto_service_action() == "run_task":
            run_task_requests.append(json.loads(json.dumps(normalised_parameters)))
            if normalised_parameters.pop("capacityProviderStrategy", None):
                normalised_parameters["launchType"] = "FARGATE"
        real_eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials)

    def build_sync_resolver(self: StateTaskServiceEcs, env: Any, resource_runtime_part: Any,
                            normalised_parameters: dict[str, Any], state_credentials: Any) -> Callable[[], Any]:
        resolve = real_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        assert resolve is not None

        def resolve_like_aws() -> Any:
            stopped = resolve()
            if stopped is not None and any(c.get("ExitCode") != 0 for c in stopped.get("Containers", [])):
                raise _task_failed(self, env, stopped)
            return stopped

        return resolve_like_aws if sync_fails_on_exit_code else resolve

    def evaluation_environment(self: ExecutionWorker) -> Any:
        env = real_environment(self)
        execution = env.states.context_object.context_object_data["Execution"]
        if isinstance(execution["StartTime"], datetime):
            execution["StartTime"] = aws_timestamp(execution["StartTime"])
        return env

    def single_node(path: str) -> bool:
        return real_singleton(path) or bool(_DEFINITE_PATH.match(path))

    def parse_once(definition: str) -> Any:
        """Speed only: the parse moto makes to validate a new machine, then drops, serves its run."""
        if definition in unused_parses:
            return unused_parses.pop(definition)
        unused_parses[definition] = parsed = real_parse(definition)
        return parsed

    with contextlib.ExitStack() as stack:
        for name in ("run_task", "describe_tasks", "list_tasks", "stop_task"):
            stack.enter_context(mock.patch.object(EC2ContainerServiceBackend, name,
                                                  _serialised(getattr(EC2ContainerServiceBackend, name))))
        for target, name, new in (
            (StateTaskService, "_normalise_parameters", _normalise_parameters),
            (StateTaskService, "_normalise_response", _normalise_response),
            (StateTaskServiceEcs, "_get_supported_parameters", supported),
            (StateTaskServiceEcs, "_eval_service_task", eval_service_task),
            (StateTaskServiceEcs, "_build_sync_resolver", build_sync_resolver),
            (ExecutionWorker, "_get_evaluation_environment", evaluation_environment),
            (branches_decl, "CustomErrorName", _branch_error_name),
            (json_path, "_is_singleton_array_access", single_node),
            (state_task_service_callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", SYNC_POLL_SECONDS),
            (AmazonStateLanguageParser, "parse", staticmethod(parse_once)),
        ):
            stack.enter_context(mock.patch.object(target, name, new))
        # tasks stay RUNNING until the agent stops them
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": sys.maxsize})
        stack.callback(state_manager.unset_transition, "ecs::task")
        yield


# --- the ECS agent -------------------------------------------------------------------------

class EcsAgent:
    """Plays ECS for the state machine: every task it starts runs a while, then exits.

    A background thread polls moto's ECS for RUNNING tasks; each new one is recorded (step,
    attempt, start time, environment) and handed to a worker thread that waits, reports the
    exit code the test chose for that step and attempt, and stops the task. A step can be held
    RUNNING until other steps have started: then "they overlap" is a fact of the run, not a
    matter of timing, and a machine that wrongly serialises them shows it by stalling.
    """

    def __init__(self, ecs: Any, account: str, region: str, cluster: str, how: Execution) -> None:
        self.ecs, self.account, self.region, self.cluster = ecs, account, region, cluster
        self.how = how
        self.runs: list[TaskRun] = []
        self.errors: list[BaseException] = []
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._poller = threading.Thread(target=self._guard(self._poll), name="ecs-agent", daemon=True)

    def __enter__(self) -> EcsAgent:
        self._poller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # tasks still held stop now
        self._poller.join(timeout=10)
        for worker in self._workers:
            worker.join(timeout=10)

    def stop_for(self, step: str, attempt: int) -> Any:
        """The scripted stop of this attempt (stop code, reasons, exit code), if the test gave one."""
        stops = self.how.stops.get(step)
        return stops[min(attempt, len(stops) - 1)] if stops else None

    def exit_code(self, step: str, attempt: int) -> int | None:
        if (stop := self.stop_for(step, attempt)) is not None:
            return stop.exit_code  # type: ignore[no-any-return]
        codes = self.how.exit_codes.get(step, 0)
        if isinstance(codes, int):
            return codes
        return codes[min(attempt, len(codes) - 1)]

    def _guard(self, work: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                work(*args)
            except BaseException as exc:  # re-raised by run_execution, not lost in a thread
                self.errors.append(exc)
        return run

    def _poll(self) -> None:
        while not self._stop.is_set():
            arns = self.ecs.list_tasks(cluster=self.cluster, desiredStatus="RUNNING")["taskArns"]
            new = [arn for arn in arns if arn not in self._seen]
            if new:
                for task in self.ecs.describe_tasks(cluster=self.cluster, tasks=new, include=["TAGS"])["tasks"]:
                    self._start(task)
            self._stop.wait(AGENT_POLL_SECONDS)

    def _start(self, task: dict[str, Any]) -> None:
        started = time.monotonic()
        step = {t["key"]: t["value"] for t in task.get("tags", [])}.get(STEP_TAG)
        if step is None:  # moto shapes responses in class state: a concurrent describe can drop tags
            return  # seen again at the next poll
        self._seen.add(task["taskArn"])
        override = task["overrides"]["containerOverrides"][0]
        attempt = sum(1 for r in self.runs if r.step == step)  # only this thread appends
        run = TaskRun(step=step, attempt=attempt, task_arn=task["taskArn"], started=started,
                      environment={e["name"]: e["value"] for e in override.get("environment", [])},
                      command=list(override.get("command", [])), exit_code=self.exit_code(step, attempt),
                      stop=self.stop_for(step, attempt))
        self.runs.append(run)
        worker = threading.Thread(target=self._guard(self._finish), args=(run,), name=f"task-{step}", daemon=True)
        self._workers.append(worker)
        worker.start()

    def _finish(self, run: TaskRun) -> None:
        # every hold ends when the run does (the agent stops): a cancelled step is not waited for
        self._stop.wait(self.how.hold.get(run.step, self.how.default_hold))
        awaited = set(self.how.hold_until_started.get(run.step, ()))
        deadline = time.monotonic() + self.how.max_hold_seconds
        while not awaited <= {r.step for r in list(self.runs)} and time.monotonic() < deadline:
            if self._stop.wait(AGENT_POLL_SECONDS / 2):
                break
        # what the agent's SubmitContainerStateChange reports (moto does not implement the call)
        task = ecs_backends[self.account][self.region].tasks[self.cluster][run.task_arn]
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = run.exit_code
            if run.stop is not None and run.stop.container_reason:
                container.reason = run.stop.container_reason
        reason = "Essential container in task exited" if run.exit_code else "Task completed"
        if run.stop is not None:  # what ECS reports for a spot interruption, a failed start...
            task.stop_code = run.stop.stop_code
            reason = run.stop.stopped_reason
        run.stopped = time.monotonic()  # before StopTask: nothing downstream can start earlier
        self.ecs.stop_task(cluster=self.cluster, task=run.task_arn, reason=reason)


# --- the AWS account the machine runs in ---------------------------------------------------

@contextlib.contextmanager
def _account(account_id: str) -> Iterator[None]:
    """moto serves every request from the account environments.yaml names, with fake credentials."""
    with mock.patch.dict(os.environ, {"MOTO_ACCOUNT_ID": account_id, "AWS_ACCESS_KEY_ID": "testing",
                                      "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                                      "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}):  # 1 s per run, unused
        yield


@cache
def _session(region: str) -> boto3.Session:
    """One session per region for the whole test run: botocore then loads each service model once."""
    return boto3.Session(region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")


def _create_platform(spec: Plan, session: boto3.Session) -> str:
    """Network, cluster, task definition and topic, with the ids and names the ASL uses.

    Returns the URL of an SQS queue subscribed to the project's notification topic.
    """
    placement, aws = spec.placement, spec.aws
    assert placement is not None and aws is not None
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # as VPCs running awsvpc tasks have it (moto's ECS also needs it to describe a task's ENI)
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet_ids = iter(placement.subnets)
    with mock.patch("moto.ec2.models.subnets.random_subnet_id", lambda: next(subnet_ids)):
        for i, _ in enumerate(placement.subnets):
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")
    group_ids = iter(placement.security_groups)
    with mock.patch("moto.ec2.models.security_groups.random_security_group_id", lambda: next(group_ids)):
        for i, _ in enumerate(placement.security_groups):
            ec2.create_security_group(GroupName=f"esteira-{i}", Description="esteira tasks", VpcId=vpc)

    ecs = session.client("ecs")
    ecs.create_cluster(clusterName=placement.cluster)
    ecs.register_task_definition(
        family=placement.task_definition, networkMode="awsvpc", requiresCompatibilities=["EC2", "FARGATE"],
        cpu="256", memory="512", executionRoleArn=aws.roles.task_execution, taskRoleArn=aws.roles.task,
        containerDefinitions=[{"name": placement.container_name, "image": "ml-jobs:test", "memory": 512,
                               "essential": True}],
    )

    sns, sqs = session.client("sns"), session.client("sqs")
    topic = sns.create_topic(Name=spec.names.sns_topic)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{spec.project}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return queue_url


def _notifications(sqs: Any, queue_url: str) -> list[Notification]:
    found = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            envelope = json.loads(message["Body"])  # SNS's envelope (raw delivery off)
            found.append(Notification(subject=envelope.get("Subject", ""), message=json.loads(envelope["Message"])))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


# --- one execution -------------------------------------------------------------------------

@dataclass(frozen=True)
class Execution:
    """How to run the exported machine once: the agent's exit codes and hold times, the input."""

    exit_codes: ExitCodes = field(default_factory=dict)
    # step -> how ECS reports each attempt's stop (tests/failure_scripts.Stop); wins over exit_codes
    stops: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    hold: Mapping[str, float] = field(default_factory=dict)  # step -> seconds its task runs (or until the run ends)
    default_hold: float = 0.1
    # step -> steps that must have started before its task exits (or max_hold_seconds passed)
    hold_until_started: Mapping[str, Collection[str]] = field(default_factory=dict)
    max_hold_seconds: float = 5.0
    execution_input: dict[str, Any] | None = None
    name: str | None = None
    sync_fails_on_exit_code: bool = True  # AWS's ecs:runTask.sync; False: moto's (never fails)


def run_execution(spec: Plan, how: Execution | None = None) -> ExecutionResult:
    """Export the project's state machine, run it once in moto with the agent, report what happened."""
    how = how or Execution()
    placement, aws = spec.placement, spec.aws
    assert placement is not None and aws is not None
    definition = to_json(render_state_machine(spec))
    requests: list[dict[str, Any]] = []
    with _account(aws.account_id), mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), \
            moto_like_aws(requests, how.sync_fails_on_exit_code):
        session = _session(aws.region)
        queue_url = _create_platform(spec, session)
        sfn, ecs = session.client("stepfunctions"), session.client("ecs")
        machine = sfn.create_state_machine(name=spec.names.state_machine, definition=definition,
                                           roleArn=aws.roles.step_functions, type="STANDARD")["stateMachineArn"]
        agent = EcsAgent(ecs, aws.account_id, aws.region, placement.cluster, how)
        with agent:
            arn = sfn.start_execution(stateMachineArn=machine, name=how.name or str(uuid.uuid4()),
                                      input=json.dumps(how.execution_input or {}))["executionArn"]
            deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
            while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
                if time.monotonic() > deadline or agent.errors:  # the result says ABORTED
                    sfn.stop_execution(executionArn=arn, error="harness.GaveUp", cause="did not finish in time")
                time.sleep(AGENT_POLL_SECONDS)
        if agent.errors:
            raise agent.errors[0]
        return ExecutionResult(
            status=described["status"], name=arn.rsplit(":", 1)[-1], start_date=described["startDate"],
            runs=list(agent.runs), notifications=_notifications(session.client("sqs"), queue_url),
            history=sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"],
            run_task_requests=requests,
        )
