"""The config.yaml contract as pydantic models: strict types, unknown keys rejected, frozen.

Field checks that need one field live here; checks across fields (dependencies, cycles,
derived names, the folder name) live in `esteira.config`, which reports them all at once.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from esteira.cron import normalise_cron
from esteira.naming import ENV_VAR_RE, PROJECT_NAME_RE, STEP_ID_MAX, STEP_ID_RE, VERSION_RE
from esteira.s3_trigger import check_bucket, check_key_part, check_prefix
from esteira.timezones import alias_target

# Tokens a shell would interpret; with no shell they would reach the program as arguments.
_SHELL_TOKENS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "<<", "2>", "2>&1"}
# `$NAME` / `${NAME}` anywhere in an argument: a shell would expand it, nothing here does.
_SHELL_VARIABLE = re.compile(r"\$\{?[A-Za-z_]")
_LINE_BREAKS = re.compile("[\r\n\u2028\u2029]")
# Step ids a state machine cannot hold: esteira's own states are `esteira.*` (a step `esteira` would
# get `esteira.failed`, the machine's end state), and asl-validator misreads (or crashes on) states
# named like the language's structural fields (tests/hostile_cases.py has each).
RESERVED_STEP_IDS = frozenset({"esteira", "States", "StartAt", "Next", "Default", "Branches", "Iterator",
                               "ItemProcessor", "ItemReader"})
# Environment names that esteira sets itself in every step.
RESERVED_ENV = frozenset(
    {"RUN_DATE", "RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL",
     "MLFLOW_EXPERIMENT_NAME", "DATA_ROOT", "TRIGGER_BUCKET", "TRIGGER_KEY"}
)
SECRET_STORES = ("ssm", "secretsmanager")
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "CREDENTIAL", "API_KEY", "ACCESS_KEY",
                   "PRIVATE_KEY")
# An address that email-validator accepts and returns unchanged (pydantic's EmailStr stores its
# normalised form): lower-case ASCII dot-atom @ lower-case host names, every label a letter or digit
# at both ends, no "--" (Punycode and R-LDH labels are email-validator's to judge), a letters-only
# top-level domain. tests/test_email.py holds it to EmailStr.
_PLAIN_EMAIL = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                          r"(?P<tld>[a-z]{2,63})")
_EMAIL_MAX = 254  # email-validator's limit for a whole address
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})  # refused by it


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _pattern(regex: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"{value!r} is not valid: {what}")
        return value

    return AfterValidator(check)


def _command(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command into arguments: {exc}") from None
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise ValueError("must be a string or a list of strings")
    if not parts:
        raise ValueError("must not be empty")
    for index, token in enumerate(parts):
        if token == "":
            raise ValueError(f"argument {index} is empty; remove it (an empty argument is almost always "
                             "a quoting mistake)")
        if _LINE_BREAKS.search(token):
            raise ValueError(f"argument {index} holds a line break; put multi-line text in a file or an "
                             "env_var (asl-validator refuses line breaks in an ECS command)")
        if token in _SHELL_TOKENS or "$(" in token or "`" in token:
            raise ValueError(
                f"{token!r} is shell syntax, but commands run without a shell "
                "(it would reach the program as an argument); run one program per step "
                "and chain steps with depends_on"
            )
        if _SHELL_VARIABLE.search(token):
            raise ValueError(
                f"{token!r} would not be expanded: commands run without a shell, so the program would "
                "receive the text as written; read the variable from the environment in your code instead"
            )
    return tuple(parts)


def _env_name(name: str) -> str:
    if not ENV_VAR_RE.match(name):
        raise ValueError(f"{name!r} is not a valid environment variable name "
                         "(letters, digits and '_', not starting with a digit)")
    if name in RESERVED_ENV:
        raise ValueError(f"{name} is set by esteira in every step; remove it from env_vars")
    upper = name.upper()
    if any(marker in upper for marker in _SECRET_MARKERS):
        raise ValueError(
            f"{name} looks like a secret; secrets must never be written in config.yaml "
            "(store them in AWS Secrets Manager or SSM and let the task definition inject them)"
        )
    return name


def _secret_name(name: str) -> str:
    """Secrets are injected by ECS under this variable name: same rules as env_vars, minus the secret check."""
    if not ENV_VAR_RE.match(name):
        raise ValueError(f"{name!r} is not a valid environment variable name "
                         "(letters, digits and '_', not starting with a digit)")
    if name in RESERVED_ENV:
        raise ValueError(f"{name} is set by esteira in every step; choose another name")
    return name


def _secret_ref(value: str) -> str:
    kind, _, name = value.partition(":")
    if kind not in SECRET_STORES or not name:
        raise ValueError(f"{value!r} is not a secret reference: write 'ssm:<parameter name>' "
                         "(SSM Parameter Store, e.g. 'ssm:/recsys/db-password') or "
                         "'secretsmanager:<secret name>' (e.g. 'secretsmanager:recsys/db')")
    if not SECRET_NAME_RE.match(name.lstrip("/")):
        raise ValueError(f"{name!r} is not a valid {kind} name (letters, digits and /_+=.@-)")
    return value


def _timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. 'UTC', "
                         "'America/Sao_Paulo', 'Europe/Lisbon')") from None
    target = alias_target(name)
    if target is not None:
        raise ValueError(f"{name!r} is an old alias of {target!r}; write {target!r} (EventBridge Scheduler "
                         "takes the canonical IANA names)")
    return name


def _email(value: str) -> str:
    """EmailStr's check and normalised value, without importing email-validator for a plain address
    (it compiles its Unicode regexes at import: about a tenth of an export's time)."""
    plain = _PLAIN_EMAIL.fullmatch(value)
    if plain and len(value) <= _EMAIL_MAX and "--" not in value.partition("@")[2] \
            and plain["tld"] not in _SPECIAL_USE_TLDS:
        return value
    from pydantic.networks import validate_email  # any other address: EmailStr's own validation

    return validate_email(value)[1]


ProjectName = Annotated[str, _pattern(PROJECT_NAME_RE, "lower-case letters, digits, '-' and '_', "
                                      "starting with a letter")]
def _not_reserved(step_id: str) -> str:
    if step_id in RESERVED_STEP_IDS:
        raise ValueError(f"{step_id!r} is reserved: " + (
            "esteira names its own states esteira.*" if step_id == "esteira"
            else "it is a field of the Amazon States Language, and ASL validators misread a state named so")
            + "; choose another id")
    return step_id


StepId = Annotated[str, _pattern(STEP_ID_RE, f"1-{STEP_ID_MAX} letters, digits, '-' and '_', starting "
                                 "with a letter (it is the Airflow task id and the Step "
                                 "Functions state name)"), AfterValidator(_not_reserved)]
Version = Annotated[str, _pattern(VERSION_RE, "letters, digits, '.', '-' and '_' "
                                  "(it is part of the image tag)")]
EnvName = Annotated[str, AfterValidator(_env_name)]
SecretName = Annotated[str, AfterValidator(_secret_name)]
SecretRef = Annotated[str, AfterValidator(_secret_ref)]
EnvValue = Annotated[str, Field(max_length=4096)]  # NUL is refused by the YAML reader, in every value
# the config may write a command as one string (split like a shell would, without running one) or a list
Command = Annotated[tuple[str, ...], BeforeValidator(_command, json_schema_input_type=str | list[str])]
Cron = Annotated[str, AfterValidator(normalise_cron)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Seconds = Annotated[int, Field(gt=0, le=31_536_000)]
Retries = Annotated[int, Field(ge=0, le=25)]
InfraRetries = Annotated[int, Field(ge=0, le=10)]
# pydantic's EmailStr, same errors, value and JSON Schema; see _email
Email = Annotated[str, AfterValidator(_email), WithJsonSchema({"format": "email", "type": "string"})]


class Owners(Strict):
    tech_owner: Email
    business_owner: Email


class Schedule(Strict):
    enabled: bool
    cron: Cron
    timeout_seconds: Seconds
    retries: Retries
    retry_delay_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60
    timezone: TimeZone = "UTC"
    catchup: bool = False
    start_date: Annotated[dt.date | None, Field(strict=False)] = None
    # 1: a run starts when the previous one has ended, so each run sees the models its earlier
    # dates registered (point-in-time); Airflow's max_active_runs and esteira backfill's default
    max_active_runs: Annotated[int, Field(ge=1, le=32)] = 1
    # the infrastructure's budget (spot interruptions, tasks that failed to start), apart from
    # `retries`, the application's: esteira.ecs_failures says which failures are which
    infra_retries: InfraRetries = 3
    infra_retry_delay_seconds: Annotated[int, Field(ge=1, le=3600)] = 60


class Runtime(Strict):
    python_version: Annotated[str, Field(pattern=r"^3\.\d{1,2}$")]
    requirements_file: str = "requirements.txt"
    env_vars: dict[EnvName, EnvValue] = {}
    # injected by ECS from SSM Parameter Store / Secrets Manager of the target account, never in plain text
    secrets: dict[SecretName, SecretRef] = {}


def _memory_floor(memory_gb: float) -> float:
    if memory_gb * 1024 < 6:
        raise ValueError(f"{memory_gb:g} GiB is {memory_gb * 1024:g} MiB; a container needs 6 MiB at least "
                         "(Docker's minimum), and a real job far more (e.g. 0.5)")
    return memory_gb


class Resources(Strict):
    # ECS: a task gets 128 CPU units (0.125 vCPU) at least, 192 vCPU at most; Docker gives a
    # container 6 MiB of memory at least
    cpu: Annotated[float, Field(ge=0.125, le=192)]
    memory_gb: Annotated[float, Field(le=1024), AfterValidator(_memory_floor)]


class Step(Strict):
    id: StepId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    command: Command
    resources: Resources
    depends_on: tuple[StepId, ...] | None = None
    retries: Retries | None = None
    infra_retries: InfraRetries | None = None
    timeout_seconds: Seconds | None = None
    env_vars: dict[EnvName, EnvValue] = {}


class Pipeline(Strict):
    steps: Annotated[tuple[Step, ...], Field(min_length=1, max_length=200)]


class Batch(Strict):
    enabled: bool
    orchestrator: Literal["step_functions", "airflow"]
    pipeline: Pipeline


class Compute(Strict):
    """`ec2`: an auto scaling group behind the project's capacity provider (the seed's);
    `fargate`: AWS's FARGATE / FARGATE_SPOT capacity providers, no instances to manage."""

    provider: Literal["ec2", "fargate"]
    ec2_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")] | None = None
    min_quantity: Annotated[int, Field(ge=0, le=1000)] | None = None
    max_quantity: Annotated[int, Field(ge=1, le=1000)] | None = None
    spot: bool


class Infra(Strict):
    compute: Compute
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                                1827, 2192, 2557, 2922, 3288, 3653] = 30


class Notifications(Strict):
    on_success: tuple[Email, ...] = ()
    on_failure: tuple[Email, ...] = ()


class S3Trigger(Strict):
    """Objects landing in a bucket start a run: an EventBridge rule on S3 "Object Created" events."""

    # `{env}` becomes dev, prd or local: one bucket per account
    bucket: Annotated[str, AfterValidator(check_bucket)]
    prefix: Annotated[str, AfterValidator(check_prefix)] = ""
    suffix: Annotated[str, AfterValidator(check_key_part)] = ""


class Trigger(Strict):
    s3: S3Trigger


class ProjectConfig(Strict):
    project_name: ProjectName
    description: str = ""
    version: Version
    owners: Owners
    schedule: Schedule
    runtime: Runtime
    batch: Batch
    infra: Infra
    notifications: Notifications = Notifications()
    trigger: Trigger | None = None
