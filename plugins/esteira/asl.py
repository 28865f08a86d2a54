"""Plan -> Amazon States Language: the same graph Airflow runs, as a state machine.

Each step is an `ecs:runTask.sync` Task state named by its step id, whose Parameters are the
Plan's RunTask request, PascalCased. Dependencies become nested sequences and Parallel
states (`esteira.graph.structure`). The run's identity comes from the execution input that the
EventBridge schedule sends, or from the execution itself when started by hand.

Failure semantics are Airflow's, with esteira's two budgets. EcsRunTaskOperator fails a task whose
container stopped with a non-zero (or no) exit code. `ecs:runTask.sync` waits for the task to
stop, and whether it fails the state on a non-zero exit code is not something to bet a production
pipeline on (the emulators, moto among them, succeed), so the machine checks the exit code itself,
and then asks why the task failed (esteira.ecs_failures: the job, or the capacity under it). Each
step is

    <step>.run            Parallel with one branch, so that Retry re-runs the whole try
      <step>.try            Pass: this try's infrastructure attempts, 0  (when infra_retries > 0)
      <step>                the ECS task (TimeoutSeconds = Airflow's timeout, per task); a
                            States.TaskFailed is caught: its cause is the task's description
      <step>.exit-code      Choice: the container's ExitCode is present and 0?   -> <step>.ok
      <step>.classify       Choice: an infrastructure failure (the ecs_failures table)?
      <step>.infra          Choice: attempts left in this try? -> <step>.backoff (count, pick the
                            wait: infra_retry_delay_seconds x 2^n), <step>.wait, <step> again
      <step>.infra-err      Fail esteira.InfrastructureFailure      <step>.failed   Fail esteira.StepFailed

with Retry on `<step>.run`: esteira.InfrastructureFailure is never retried there (the budget was
spent inside the try), anything else (StepFailed, a timeout) is retried `retries` times with a
fixed delay, as in Airflow. The infrastructure budget is per try on both orchestrators. After the
last try the failure is caught without cancelling the steps that do not depend on it (see
_Builder); once they have finished, the same message Airflow's callback sends is published and
the run ends in Fail. The task's description lives only inside the branch: the wrapper drops it
(ResultPath null), so the 256 KiB payload and 25,000-event history limits stay far away.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from esteira import notifications
from esteira.ecs_failures import (
    APPLICATION,
    INFRA_ERROR,
    INFRASTRUCTURE,
    INFRASTRUCTURE_RULES,
    TIMEOUT,
    Field,
    Rule,
    infra_delay_seconds,
)
from esteira.errors import ConfigError, Problem
from esteira.graph import Block, Par, Seq, structure
from esteira.plan import INPUT_RUN_DATE, INPUT_RUN_ID, Plan, StepPlan
from esteira.run_values import RunValue
from esteira.s3_trigger import INPUT_TRIGGER_BUCKET, INPUT_TRIGGER_KEY

MAX_DEFINITION_BYTES = 1_048_576  # Step Functions' definition size limit
RUN_PATH = "$.esteira"
START, FROM_INPUT, FROM_EXECUTION = "esteira.start", "esteira.run-from-schedule", "esteira.run-from-execution"
FROM_TRIGGER = "esteira.run-from-trigger"  # an S3 object's event (esteira.s3_trigger.INPUT_TRANSFORMER)
NOTIFY_SUCCESS, NOTIFY_FAILURE = "esteira.notify-success", "esteira.notify-failure"
SUCCEEDED, FAILED = "esteira.succeeded", "esteira.failed"
# the failure path: a step's error, or a Parallel's branches' errors -> the list -> records (explain)
STEP_ERROR, BRANCH_ERRORS, EXPLAIN = "esteira.step-error", "esteira.branch-errors", "esteira.explain"
# a step's helper states are `<step><suffix>`; esteira.naming.STEP_ID_MAX leaves room for the longest
RUN_SUFFIX, CHECK_SUFFIX, OK_SUFFIX, FAILED_SUFFIX = ".run", ".exit-code", ".ok", ".failed"
TRY_SUFFIX, CAUGHT_SUFFIX, CAUSE_SUFFIX, CLASSIFY_SUFFIX = ".try", ".caught", ".cause", ".classify"
INFRA_RETRY_SUFFIX, INFRA_NEXT_SUFFIX = ".infra", ".backoff"
INFRA_WAIT_SUFFIX, INFRA_FAILED_SUFFIX = ".wait", ".infra-err"
WHY_SUFFIX, RECORD_SUFFIX, NO_TASK_SUFFIX, TIMEOUT_SUFFIX = ".why", ".rec", ".no-task", ".timeout"
HELPER_SUFFIXES = (RUN_SUFFIX, CHECK_SUFFIX, OK_SUFFIX, FAILED_SUFFIX, TRY_SUFFIX, CAUGHT_SUFFIX, CAUSE_SUFFIX,
                   CLASSIFY_SUFFIX, INFRA_RETRY_SUFFIX, INFRA_NEXT_SUFFIX, INFRA_WAIT_SUFFIX, INFRA_FAILED_SUFFIX,
                   WHY_SUFFIX, RECORD_SUFFIX, NO_TASK_SUFFIX, TIMEOUT_SUFFIX)
_TASK = "$.ecs"  # the stopped task's description, inside a step's branch
_RULE_PATHS = {Field.STOP_CODE: f"{_TASK}.StopCode", Field.STOPPED_REASON: f"{_TASK}.StoppedReason",
               Field.CONTAINER_REASON: f"{_TASK}.Containers[0].Reason"}
STEP_FAILED_ERROR = "esteira.StepFailed"
STEP_TIMEOUT_ERROR = "esteira.StepTimeout"
# A failed step's Fail state carries a short record as its Cause (JSON text, one-letter keys: each
# step's branch writes one); absent fields are null after a States.JsonMerge over BLANK. The explain
# Map turns each into notifications.failure_record's shape. Record field -> (cause key, where the
# step's `.why` state took it from, when ECS said it).
_CAUSE = {"step": ("s", None), "exit_code": ("x", "$.why.c.ExitCode"), "stop_code": ("c", "$.why.t.StopCode"),
          "stopped_reason": ("r", "$.why.t.StoppedReason"), "task": ("t", "$.why.t.TaskArn")}
_CAUSE_KEY = {field: key for field, (key, _) in _CAUSE.items()}
SHARED, SHARED_PATH = "esteira.shared", f"{RUN_PATH}.shared"
BLANK_PATH = f"{SHARED_PATH}.blank"
_BLANK = {"task": {"StopCode": None, "StoppedReason": None, "TaskArn": None},
          "container": {"ExitCode": None}, "record": dict.fromkeys(_CAUSE_KEY.values())}
RUN_TASK_REFUSED = "ECS.AmazonECSException"  # how the ECS integration reports a RunTask that placed no task


class _Path(str):
    """A value Step Functions reads from the state at run time (rendered as "Key.$")."""


_RUN_VALUE_PATHS = {RunValue.RUN_DATE: _Path(f"{RUN_PATH}.run_date"), RunValue.RUN_ID: _Path(f"{RUN_PATH}.run_id"),
                    RunValue.TRIGGER_BUCKET: _Path(f"{RUN_PATH}.{INPUT_TRIGGER_BUCKET}"),
                    RunValue.TRIGGER_KEY: _Path(f"{RUN_PATH}.{INPUT_TRIGGER_KEY}")}


def render_state_machine(plan: Plan) -> dict[str, Any]:
    """The ASL definition of a project for an AWS target (dev/prd)."""
    if plan.placement is None:
        raise ValueError("a state machine needs an AWS target (dev or prd), not the local backend")
    notify = plan.notifications
    on_failure = NOTIFY_FAILURE if notify.on_failure else FAILED
    on_success = NOTIFY_SUCCESS if notify.on_success else SUCCEEDED

    states: dict[str, Any] = {}
    _identity_states(states, triggered=plan.trigger is not None)
    builder = _Builder(plan)
    first = builder.chain(structure(plan.graph), states, on_success, STEP_ERROR, BRANCH_ERRORS)
    for identity in (FROM_TRIGGER, FROM_INPUT, FROM_EXECUTION):
        if identity in states:
            states[identity]["Next"] = SHARED
    # what every step's RunTask has in common, written once (the definition's 1 MiB limit): every
    # branch starts from the run's input, so the steps read it from there
    states[SHARED] = {"Type": "Pass", "ResultPath": SHARED_PATH, "Next": first,
                      "Parameters": {"blank": _BLANK, **builder.shared}}
    # the run failed: its errors as one list (a step's, or those a Parallel's branches collected)
    states[STEP_ERROR] = {"Type": "Pass", "Parameters": {"list.$": "States.Array($.error)"},
                          "ResultPath": "$.errors", "Next": EXPLAIN}
    if _leads_to(states, BRANCH_ERRORS):
        states[BRANCH_ERRORS] = {"Type": "Pass", "Parameters": {"list.$": _BRANCH_ERRORS},
                                 "ResultPath": "$.errors", "Next": EXPLAIN}
    states[EXPLAIN] = _explain_state(plan, on_failure)
    if notify.on_success:
        _notify_states(states, plan, notifications.SUCCEEDED, NOTIFY_SUCCESS, SUCCEEDED)
    if notify.on_failure:
        _notify_states(states, plan, notifications.FAILED, NOTIFY_FAILURE, FAILED)
    states[SUCCEEDED] = {"Type": "Succeed"}
    states[FAILED] = {"Type": "Fail", "Error": STEP_FAILED_ERROR,
                      "Cause": f"a step of {plan.project} failed after its retries; see the execution history"}
    definition = {
        "Comment": f"{plan.project} {plan.version}: {' '.join(plan.description.split())}"[:1000],
        "StartAt": START,
        "TimeoutSeconds": plan.run_timeout_seconds,
        "States": states,
    }
    size = len(compact_json(definition).encode())  # as esteira sends it (the stack's DefinitionString)
    if size > MAX_DEFINITION_BYTES:
        raise ConfigError(plan.source, [Problem(
            f"the state machine definition is {size} bytes; Step Functions accepts at most "
            f"{MAX_DEFINITION_BYTES}: use fewer or smaller steps", ("batch", "pipeline", "steps"))])
    return definition


def compact_json(definition: dict[str, Any]) -> str:
    return json.dumps(definition, separators=(",", ":"), ensure_ascii=False)


def to_json(definition: dict[str, Any]) -> str:
    """Deterministic text: the same config always gives the same bytes."""
    return json.dumps(definition, indent=2, ensure_ascii=False) + "\n"


def _identity_states(states: dict[str, Any], *, triggered: bool = False) -> None:
    """The run's values under $.esteira: from the schedule's input, else from the execution itself.

    A triggered project's machine also reads an S3 event's input (run_date, run_id, trigger_bucket,
    trigger_key: esteira.s3_trigger.INPUT_TRANSFORMER); any other run gets empty trigger values, as
    in Airflow, so TRIGGER_BUCKET/TRIGGER_KEY are always set and empty means "not started by an object".
    """
    choices: list[dict[str, Any]] = []
    empty: dict[str, str] = {}
    if triggered:
        keys = (INPUT_RUN_DATE, INPUT_RUN_ID, INPUT_TRIGGER_BUCKET, INPUT_TRIGGER_KEY)
        choices.append({"And": [{"Variable": f"$.{key}", "IsPresent": True} for key in keys], "Next": FROM_TRIGGER})
        empty = {INPUT_TRIGGER_BUCKET: "", INPUT_TRIGGER_KEY: ""}
    choices.append({"And": [{"Variable": f"$.{INPUT_RUN_DATE}", "IsPresent": True},
                            {"Variable": f"$.{INPUT_RUN_ID}", "IsPresent": True}],
                    "Next": FROM_INPUT})
    states[START] = {
        "Type": "Choice",
        "Comment": ("RUN_DATE/RUN_ID: from the schedule's input, else from this execution"
                    + ("; with the object of an S3 event's input" if triggered else "")),
        "Choices": choices,
        "Default": FROM_EXECUTION,
    }
    if triggered:
        states[FROM_TRIGGER] = {"Type": "Pass", "Parameters": {f"{key}.$": f"$.{key}" for key in keys},
                                "ResultPath": RUN_PATH}
    states[FROM_INPUT] = {"Type": "Pass", "Parameters": {
        "run_date.$": f"$.{INPUT_RUN_DATE}", "run_id.$": f"$.{INPUT_RUN_ID}", **empty}, "ResultPath": RUN_PATH}
    # StartTime is 2026-11-24T03:00:00.123Z; RUN_DATE drops the fraction, as the scheduler's does
    states[FROM_EXECUTION] = {"Type": "Pass", "Parameters": {
        "run_date.$": "States.Format('{}Z', States.ArrayGetItem(States.StringSplit($$.Execution.StartTime, '.'), 0))",
        "run_id.$": "$$.Execution.Name", **empty}, "ResultPath": RUN_PATH}


_BRANCH_ERRORS = "$.outcome.branches[*].errors[*]"  # after a Parallel state some of whose branches failed
_COLLECTED_PATHS: dict[RunValue | notifications.Collected, _Path] = {
    notifications.Collected.FAILURES: _Path("$.failures")}


def _explain_state(plan: Plan, following: str) -> dict[str, Any]:
    """A Map from the run's errors (Error, Cause) to notifications.failure_record's: the same records
    esteira's Airflow callback lists. The classification is the Fail state's error name; the rest is
    the step's short record (its Cause), the log link built from the task ARN it names."""
    assert plan.placement is not None
    placement = plan.placement
    url = notifications.log_stream_url_prefix(placement.region, placement.log_group, placement.task_log_prefix)
    name = f"{EXPLAIN}."
    kinds = {STEP_FAILED_ERROR: APPLICATION, INFRA_ERROR: INFRASTRUCTURE, STEP_TIMEOUT_ERROR: TIMEOUT}
    task = f"$.c.{_CAUSE_KEY['task']}"
    split = f"States.StringSplit({task}, '/')"
    states: dict[str, Any] = {
        f"{name}kind": {"Type": "Choice", "Default": f"{name}{notifications.UNKNOWN}", "Choices": [
            {"Variable": "$.error.Error", "StringEquals": error, "Next": f"{name}{kind}"}
            for error, kind in kinds.items()]},
        **{f"{name}{kind}": {"Type": "Pass", "Next": f"{name}has-task", "Parameters": {
            "classification": kind, "c.$": "States.JsonMerge($.blank, States.StringToJson($.error.Cause), false)"}}
           for kind in kinds.values()},
        f"{name}has-task": {"Type": "Choice", "Default": f"{name}no-link",
                            "Choices": [{"Variable": task, "IsString": True, "Next": f"{name}link"}]},
        f"{name}link": {"Type": "Pass", "Next": f"{name}record", "Parameters": {
            "classification.$": "$.classification", "c.$": "$.c",
            # the task id ends the ARN, in either ARN format
            "log.$": f"States.Format('{_intrinsic_text(url)}{{}}', States.ArrayGetItem({split}, "
                     f"States.MathAdd(States.ArrayLength({split}), -1)))"}},
        f"{name}no-link": {"Type": "Pass", "Next": f"{name}record", "Parameters": {
            "classification.$": "$.classification", "c.$": "$.c", "log": None}},
        f"{name}record": {"Type": "Pass", "End": True, "Parameters": _params({
            field: _Path(f"$.c.{_CAUSE_KEY[field]}" if field in _CAUSE_KEY else f"$.{field}")
            for field in notifications.RECORD_KEYS})},
        # not a failure esteira classified (an error of Step Functions itself): its error name
        f"{name}{notifications.UNKNOWN}": {"Type": "Pass", "End": True, "Parameters": _params(
            notifications.failure_record(None, notifications.UNKNOWN) | {"stopped_reason": _Path("$.error.Error")})},
    }
    return {
        "Type": "Map",
        "Comment": "why each failed step failed: the records of the failure notification",
        "ItemsPath": "$.errors.list",
        "ItemSelector": {"error.$": "$$.Map.Item.Value", "blank.$": f"{BLANK_PATH}.record"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": f"{name}kind", "States": states},
        "ResultPath": "$.failures",
        "Next": following,
    }


def _leads_to(states: dict[str, Any], name: str) -> bool:
    """Whether a state of this scope goes to `name` (Next, Default or a Choice's or Catch's Next)."""
    def targets(value: Any) -> Iterator[Any]:
        if isinstance(value, dict):
            yield value.get("Next"), value.get("Default")
            for key, item in value.items():
                if key != "Branches":  # a Parallel's branches are scopes of their own
                    yield from targets(item)
        elif isinstance(value, list):
            for item in value:
                yield from targets(item)
    return any(name in pair for pair in targets(states))


def _intrinsic_text(text: str) -> str:
    """A string literal inside an intrinsic function: ' { } and \\ are escaped with a backslash."""
    return "".join(f"\\{char}" if char in "'{}\\" else char for char in text)


def _notify_states(states: dict[str, Any], plan: Plan, status: str, first: str, end: str) -> None:
    """A Pass state that builds the message (the same JSON Airflow's callback sends), then SNS."""
    assert plan.notifications.topic_arn is not None
    name = plan.project
    fields = notifications.message_fields(name, plan.target.env, status)
    publish = f"{first}.publish"
    paths = dict(_COLLECTED_PATHS)
    for value, path in _RUN_VALUE_PATHS.items():
        paths[value] = path
    states[first] = {
        "Type": "Pass",
        "Parameters": _params({k: paths[v] if isinstance(v, RunValue | notifications.Collected) else v
                               for k, v in fields.items()}),
        "ResultPath": "$.notification",
        "Next": publish,
    }
    states[publish] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {
            "TopicArn": plan.notifications.topic_arn,
            "Subject": notifications.subject(name, plan.target.env, status),
            "Message.$": "States.JsonToString($.notification)",
            "MessageAttributes": {k: {"DataType": "String", "StringValue": v}
                                  for k, v in notifications.message_attributes(status).items()},
        },
        "ResultPath": None,
        # like Airflow's callbacks: a notification that cannot be sent does not change the outcome
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": end}],
        "Next": end,
    }


class _Builder:
    """Renders Seq/Par blocks so that a failure stops only what depends on it, as in Airflow.

    Airflow's all_success rule skips a failed step's descendants but lets independent steps
    finish, then fails the run. A Parallel state whose branch fails would cancel its sibling
    branches instead, so no failure is allowed to leave a branch: each step's wrapper catches
    its own failure and ends its sequence (in a series-parallel graph the rest of a sequence
    depends on it), each branch ends in `{"failed": true|false, "errors": [...]}` (the errors of
    its failed steps, as Catch put them), and after a Parallel state has let every branch finish,
    a Choice sends the run on to the failure path when any branch failed, with the branches'
    errors in branch order. The failure notification and Fail come once, at the end.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.parallel_count = 0
        self.shared: dict[str, Any] = {"env": {}}  # RunTask values the steps read from SHARED_PATH

    def chain(self, block: Block, states: dict[str, Any], on_success: str, on_failure: str, on_failures: str) -> str:
        """Add the block's states: they go to on_success when all ran, else to on_failure (a step's error
        in $.error) or on_failures (a Parallel's branches' in $.outcome.branches); return the start."""
        items = list(block.items) if isinstance(block, Seq) else [block]
        names = [self._name(item) for item in items]
        catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": on_failure}]
        for i, item in enumerate(items):
            following = names[i + 1] if i + 1 < len(items) else on_success
            if isinstance(item, str):
                states[names[i]] = {**self._step(self.plan.step(item)), "Catch": catch, "Next": following}
                continue
            assert isinstance(item, Par)
            outcome = f"{names[i]}.outcome"
            branches = []
            for j, branch in enumerate(item.branches, start=1):
                prefix = f"{names[i]}.branch-{j}"
                ok, failed, within = f"{prefix}.ok", f"{prefix}.failed", f"{prefix}.failed-within"
                branch_states: dict[str, Any] = {}
                branch_start = self.chain(branch, branch_states, ok, failed, within)
                branch_states[ok] = {"Type": "Pass", "Result": {"failed": False, "errors": []}, "End": True}
                branch_states[failed] = {"Type": "Pass", "End": True, "Parameters": {
                    "failed": True, "errors.$": "States.Array($.error)"}}
                if _leads_to(branch_states, within):  # the branch holds a Parallel state
                    branch_states[within] = {"Type": "Pass", "End": True, "Parameters": {
                        "failed": True, "errors.$": _BRANCH_ERRORS}}
                branches.append({"StartAt": branch_start, "States": branch_states})
            states[names[i]] = {
                "Type": "Parallel", "Branches": branches,
                # the branches' outcomes; their errors are flattened (in branch order) only when one failed:
                # a wildcard path matching nothing is an error when it starts at the root ($[*]...)
                "ResultSelector": {"failed.$": "States.ArrayContains($[*].failed, true)", "branches.$": "$"},
                "ResultPath": "$.outcome", "Catch": catch, "Next": outcome,
            }
            states[outcome] = {
                "Type": "Choice", "Comment": "every branch has finished; did any step fail?",
                "Choices": [{"Variable": "$.outcome.failed", "BooleanEquals": True, "Next": on_failures}],
                "Default": following,
            }
        return names[0]

    def _name(self, item: Block) -> str:
        if isinstance(item, str):
            return f"{item}{RUN_SUFFIX}"
        if isinstance(item, Seq):  # pragma: no cover - structure never nests Seq directly in Seq
            raise AssertionError("nested sequence")
        self.parallel_count += 1
        return f"esteira.parallel-{self.parallel_count}"

    def _step(self, step: StepPlan) -> dict[str, Any]:
        """The step's wrapper: one branch (task, exit-code check, classification, infrastructure
        retries), retried as a whole for the application's failures."""
        name = step.step_id
        assert self.plan.placement is not None
        check, ok, failed = f"{name}{CHECK_SUFFIX}", f"{name}{OK_SUFFIX}", f"{name}{FAILED_SUFFIX}"
        caught, cause, classify = f"{name}{CAUGHT_SUFFIX}", f"{name}{CAUSE_SUFFIX}", f"{name}{CLASSIFY_SUFFIX}"
        infra_failed = f"{name}{INFRA_FAILED_SUFFIX}"
        why, record = f"{name}{WHY_SUFFIX}", f"{name}{RECORD_SUFFIX}"
        no_task, timed_out = f"{name}{NO_TASK_SUFFIX}", f"{name}{TIMEOUT_SUFFIX}"
        exit_code = f"{_TASK}.Containers[0].ExitCode"  # the task definition has one container
        budget = step.infra_retries
        infrastructure = f"{name}{INFRA_RETRY_SUFFIX}" if budget else infra_failed
        states: dict[str, Any] = {
            name: {**self._task(step), "Next": check, "Catch": [
                # RunTask placed nothing (no capacity): the Airflow operator's EcsOperatorError
                {"ErrorEquals": [RUN_TASK_REFUSED], "ResultPath": f"{_TASK}_failure", "Next": no_task},
                {"ErrorEquals": ["States.TaskFailed"], "ResultPath": f"{_TASK}_failure", "Next": caught},
                # TimeoutSeconds passed: Step Functions stops the ECS task (its role may: ecs:StopTask)
                {"ErrorEquals": ["States.Timeout"], "ResultPath": None, "Next": timed_out}]},
            # the cause of a failed .sync task is the task's description, as JSON text
            caught: {"Type": "Pass", "Parameters": {"task.$": f"States.StringToJson({_TASK}_failure.Cause)"},
                     "ResultPath": f"{_TASK}_failure", "Next": cause},
            cause: {"Type": "Pass", "InputPath": f"{_TASK}_failure.task", "ResultPath": _TASK, "Next": check},
            check: {
                "Type": "Choice",  # EcsRunTaskOperator's rule: the container stopped with exit code 0
                "Choices": [{"And": [{"Variable": exit_code, "IsPresent": True},
                                     {"Variable": exit_code, "NumericEquals": 0}], "Next": ok}],
                "Default": why,
            },
            # the failure's short record, for the notification (see BLANK_PATH): absent fields are null
            why: {"Type": "Pass", "ResultPath": "$.why", "Next": record, "Parameters": {
                "t.$": f"States.JsonMerge({BLANK_PATH}.task, {_TASK}, false)",
                "c.$": f"States.JsonMerge({BLANK_PATH}.container, {_TASK}.Containers[0], false)"}},
            record: {"Type": "Pass", "ResultPath": "$.why", "Next": classify, "Parameters": {
                _CAUSE_KEY["step"]: name, **{f"{key}.$": path for key, path in _CAUSE.values() if path}}},
            no_task: {"Type": "Pass", "Result": {
                _CAUSE_KEY["step"]: name, _CAUSE_KEY["stopped_reason"]: notifications.NO_TASK},
                "ResultPath": "$.why", "Next": infrastructure},
            classify: {
                "Type": "Choice",
                "Choices": [{**_infrastructure_condition(), "Next": infrastructure}],
                "Default": failed,
            },
            ok: {"Type": "Succeed"},
            # an application failure (non-zero exit code, or never ran) / infrastructure failures on every
            # ECS task of the try / the timeout: the error names the classification, the cause is the record
            failed: {"Type": "Fail", "Error": STEP_FAILED_ERROR, "CausePath": "States.JsonToString($.why)"},
            infra_failed: {"Type": "Fail", "Error": INFRA_ERROR, "CausePath": "States.JsonToString($.why)"},
            timed_out: {"Type": "Fail", "Error": STEP_TIMEOUT_ERROR, "Cause": compact_json({_CAUSE_KEY["step"]: name})},
        }
        start = name
        if budget:
            start = f"{name}{TRY_SUFFIX}"
            following, wait = f"{name}{INFRA_NEXT_SUFFIX}", f"{name}{INFRA_WAIT_SUFFIX}"
            # whole seconds, written out (`:g` would write 1843200 as 1.8432e+06, which ASL refuses)
            waits = ", ".join(str(round(infra_delay_seconds(step.infra_retry_delay_seconds, n)))
                              for n in range(1, budget + 1))
            states[start] = {"Type": "Pass", "Result": {"attempt": 0, "wait": 0}, "ResultPath": "$.infra",
                             "Next": name}
            states[infrastructure] = {
                "Type": "Choice",
                "Choices": [{"Variable": "$.infra.attempt", "NumericLessThan": budget, "Next": following}],
                "Default": infra_failed,
            }
            states[following] = {"Type": "Pass", "ResultPath": "$.infra", "Next": wait, "Parameters": {
                "attempt.$": "States.MathAdd($.infra.attempt, 1)",
                "wait.$": f"States.ArrayGetItem(States.Array({waits}), $.infra.attempt)"}}
            states[wait] = {"Type": "Wait", "SecondsPath": "$.infra.wait", "Next": name}
        state: dict[str, Any] = {"Type": "Parallel", "Comment": step.display_name,
                                 "Branches": [{"StartAt": start, "States": states}], "ResultPath": None}
        if step.retries:
            state["Retry"] = [
                # spent inside the try: an exhausted infrastructure budget fails the step, as in Airflow
                {"ErrorEquals": [INFRA_ERROR], "MaxAttempts": 0},
                {"ErrorEquals": ["States.ALL"], "IntervalSeconds": step.retry_delay_seconds,
                 "MaxAttempts": step.retries, "BackoffRate": 1.0},
            ]
        return state

    def _task(self, step: StepPlan) -> dict[str, Any]:
        placement = self.plan.placement
        assert placement is not None
        request = _pascal(step.ecs_run_task(placement, self.plan.project, self.plan.target.env,
                                            _RUN_VALUE_PATHS.__getitem__))
        # the same network for every step, and one environment list per distinct one: read from SHARED
        self.shared["network"] = request.pop("NetworkConfiguration")
        [container] = request["Overrides"]["ContainerOverrides"]
        environments: dict[str, Any] = self.shared["env"]
        environment = _params(container.pop("Environment"))
        label = next((k for k, v in environments.items() if v == environment), f"e{len(environments)}")
        environments[label] = environment
        parameters = _params(request)
        parameters["Overrides"]["ContainerOverrides"][0]["Environment.$"] = f"{SHARED_PATH}.env.{label}"
        parameters["NetworkConfiguration.$"] = f"{SHARED_PATH}.network"
        return {
            "Type": "Task",
            "Comment": step.display_name,
            "Resource": "arn:aws:states:::ecs:runTask.sync",
            "Parameters": parameters,
            "TimeoutSeconds": step.timeout_seconds,
            # the stopped task's description, for the exit-code check and the classification; the
            # wrapper drops it again
            "ResultPath": _TASK,
        }


def _infrastructure_condition() -> dict[str, Any]:
    """The ecs_failures table as one ASL condition on the task's description, a group per field
    (an absent field never matches: IsPresent guards each group)."""
    groups = []
    for field in Field:
        rules = [rule for rule in INFRASTRUCTURE_RULES if rule.field is field]
        if not rules:
            continue
        path = _RULE_PATHS[field]
        tests = [{"Variable": path, **_test(rule)} for rule in rules]
        groups.append({"And": [{"Variable": path, "IsPresent": True},
                               tests[0] if len(tests) == 1 else {"Or": tests}]})
    return {"Or": groups}


def _test(rule: Rule) -> dict[str, str]:
    if "*" in rule.pattern:  # the table's `*` is StringMatches' wildcard; its text has no `\\`
        return {"StringMatches": rule.pattern}
    return {"StringEquals": rule.pattern}


def _pascal(value: Any) -> Any:
    """boto3's camelCase request -> the PascalCase ASL service integrations take."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    return value


def _params(value: Any) -> Any:
    """Turn {"Value": _Path("$.x")} into {"Value.$": "$.x"}, as ASL Parameters read paths."""
    if isinstance(value, dict):
        return {(f"{k}.$" if isinstance(v, _Path) else k): (str(v) if isinstance(v, _Path) else _params(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_params(v) for v in value]
    return value
