"""The hostile-config corpus: what a new user might write, and what esteira should answer.

Each case is one small, realistic edit of the valid base config of tests/test_bad_input.py and
the behaviour a user should get (the DESIRED one, not necessarily today's):

* ACCEPT: `esteira validate` passes, and then Airflow parses the DAG, asl_export renders it,
  statelint, asl-validator and cfn-lint accept the files, the stack can be sent to
  CloudFormation, and Airflow and Step Functions run each step with the same command and
  environment (tests/test_hostile_configs.py checks all of that);
* REFUSE: `esteira validate` fails, with a problem line for this config.yaml whose field path
  starts with `path` and whose message holds every one of `words` (case-insensitive; "a|b"
  means either). A config AWS or Airflow would refuse later must be refused here.

The harness writes each case as projects/<case id>/config.yaml, so a case id is a valid project
name: lower-case letters, digits and '-', starting with a letter, and short.

Where the expectation rests on an AWS or Airflow fact, the comment says where it comes from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from test_bad_input import BASE, sub

Edit = Callable[[str], str]


@dataclass(frozen=True)
class Case:
    id: str
    edit: Edit
    # None: ACCEPT; else (field path, words the message must hold)
    refuse: tuple[str, tuple[str, ...]] | None = None
    note: str = field(default="", compare=False)
    # a known gap, with the issue that closes it: the case's checks are strict xfails
    known_gap: str = field(default="", compare=False)

    @property
    def accept(self) -> bool:
        return self.refuse is None

    def text(self) -> str:
        """The config as the harness writes it: project_name is the case id (= its folder)."""
        return re.sub(r"""(["']?project_name["']?:\s*)demo\b""", rf"\g<1>{self.id}", self.edit(BASE), count=1)


def ok(case_id: str, edit: Edit, note: str = "") -> Case:
    return Case(case_id, edit, None, note)


def no(case_id: str, edit: Edit, path: str, *words: str, note: str = "", known_gap: str = "") -> Case:
    return Case(case_id, edit, (path, words), note, known_gap)


# --- edits of the base config -------------------------------------------------------------

def q(value: str) -> str:
    """A YAML double-quoted scalar holding exactly `value` (JSON strings are YAML)."""
    return json.dumps(value, ensure_ascii=False)


def chain(*edits: Edit) -> Edit:
    def apply(text: str) -> str:
        for edit in edits:
            text = edit(text)
        return text

    return apply


def whole(text: str) -> Edit:
    return lambda _: text


def cmd(yaml_value: str) -> Edit:
    """The second step's command, as written in YAML."""
    return sub('command: "python steps/score.py"', f"command: {yaml_value}")


def argv(*args: str) -> Edit:
    return cmd("[" + ", ".join(q(a) for a in args) + "]")


def env(name: str, yaml_value: str) -> Edit:
    """One more runtime.env_vars entry, the value as written in YAML."""
    return sub('    ENV: "dev"\n', f'    ENV: "dev"\n    {name}: {yaml_value}\n')


def step_env(name: str, yaml_value: str) -> Edit:
    """env_vars of the second step."""
    return sub('        name: "Score Model"\n', f'        name: "Score Model"\n        env_vars:\n          {name}: {yaml_value}\n')


def own_env(value: str) -> Edit:
    """env_vars of every generated step (see `steps`), each value made different by the step's id."""
    def apply(text: str) -> str:
        return re.sub(r'(      - id: "(\w+)"\n(?:        .*\n)*?        resources: .*\n)',
                      lambda m: f"{m[1]}        env_vars:\n          APP_OWN: {q(m[2] + value)}\n", text)

    return apply


def trigger(bucket: str, *, prefix: str | None = None, suffix: str | None = None) -> Edit:
    """A top-level `trigger: {s3: ...}` block (values as JSON strings, so any text is exact)."""
    fields = "".join(f"    {k}: {q(v)}\n" for k, v in (("bucket", bucket), ("prefix", prefix), ("suffix", suffix))
                     if v is not None)
    return sub("\ninfra:", f"\ntrigger:\n  s3:\n{fields}infra:")


def sched(line: str) -> Edit:
    return sub("  retries: 2\n", f"  retries: 2\n  {line}\n")


def cron(expr: str) -> Edit:
    return sub('cron: "0 3 * * *"', f"cron: {q(expr)}")


def tz(name: str) -> Edit:
    return sched(f"timezone: {q(name)}")


def ec2_type(name: str) -> Edit:
    return sub('ec2_type: "t3.xlarge"', f"ec2_type: {q(name)}")


def resources(cpu: str | None = None, mem: str | None = None) -> Edit:
    """The second step's resources (base: cpu 2.0, memory_gb 8), as written in YAML."""
    edits = []
    if cpu is not None:
        edits.append(sub("cpu: 2.0", f"cpu: {cpu}"))
    if mem is not None:
        edits.append(sub("memory_gb: 8", f"memory_gb: {mem}"))
    return chain(*edits)


FARGATE = sub('provider: "ec2"\n    ec2_type: "t3.xlarge"\n    min_quantity: 0\n    max_quantity: 2', 'provider: "fargate"')


def step_id(new: str) -> Edit:
    return sub('id: "score_model"', f"id: {q(new)}")


def step_name(new: str) -> Edit:
    return sub('name: "Score Model"', f"name: {q(new)}")


def secrets(lines: str) -> Edit:
    return sub('    ENV: "dev"\n', f'    ENV: "dev"\n  secrets:\n{lines}')


def notify(on_success: list[str], on_failure: list[str]) -> Edit:
    def block(key: str, addresses: list[str]) -> str:
        if not addresses:
            return f"  {key}: []\n"
        return f"  {key}:\n" + "".join(f"    - {q(a)}\n" for a in addresses)

    return sub('notifications:\n  on_failure:\n    - "oncall@rentcars.com"\n',
               "notifications:\n" + block("on_success", on_success) + block("on_failure", on_failure))


def steps(specs: list[tuple[str, list[str] | None]], *, cpu: float = 0.5, mem: float = 1) -> Edit:
    """Replace the pipeline by generated steps: (id, depends_on or None for 'after the previous')."""
    out = []
    for sid, deps in specs:
        entry = (f"      - id: {q(sid)}\n        name: {q('Step ' + sid)}\n"
                 f"        command: [\"python\", \"-m\", \"jobs\", {q(sid)}]\n"
                 f"        resources: {{cpu: {cpu}, memory_gb: {mem}}}\n")
        if deps is not None:
            entry += f"        depends_on: [{', '.join(q(d) for d in deps)}]\n"
        out.append(entry)

    def apply(text: str) -> str:
        head, rest = text.split("    steps:\n", 1)
        return head + "    steps:\n" + "".join(out) + "infra:" + rest.split("\ninfra:", 1)[1]

    return apply


def chain_of(n: int) -> Edit:
    return steps([(f"s{i:03d}", None) for i in range(n)])


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def bom(text: str) -> str:
    return "\ufeff" + text


FLOW_STYLE = """\
{project_name: demo, description: "flow style", version: "1.0.0",
 owners: {tech_owner: ml-team@rentcars.com, business_owner: produto@rentcars.com},
 schedule: {enabled: true, cron: "0 3 * * *", timeout_seconds: 3600, retries: 2},
 runtime: {python_version: "3.11", env_vars: {ENV: "dev"}},
 batch: {enabled: true, orchestrator: step_functions, pipeline: {steps: [
   {id: a, name: A, command: [python, a.py], resources: {cpu: 1, memory_gb: 2}},
   {id: b, name: B, command: "python b.py", resources: {cpu: 1, memory_gb: 2}, depends_on: [a]}]}},
 infra: {compute: {provider: ec2, ec2_type: t3.xlarge, min_quantity: 0, max_quantity: 2, spot: true}},
 notifications: {on_failure: [oncall@rentcars.com]}}
"""

ANCHORS = sub("""      - id: "extract_features"
        name: "Extract Features"
        command: "python steps/extract.py"
        resources:
          cpu: 1.0
          memory_gb: 4
      - id: "score_model"
        name: "Score Model"
        command: "python steps/score.py"
        resources:
          cpu: 2.0
          memory_gb: 8
""", """      - id: "extract_features"
        name: "Extract Features"
        command: "python steps/extract.py"
        resources: &small
          cpu: 1.0
          memory_gb: 4
        env_vars: &common
          APP_REGION: "br"
      - id: "score_model"
        name: "Score Model"
        command: "python steps/score.py"
        resources: *small
        env_vars: *common
""")

MERGE_KEYS = sub("""      - id: "score_model"
        name: "Score Model"
        command: "python steps/score.py"
        resources:
          cpu: 2.0
          memory_gb: 8
""", """      - &defaults
        id: "score_model"
        name: "Score Model"
        command: "python steps/score.py"
        resources:
          cpu: 2.0
          memory_gb: 8
      - <<: *defaults
        id: "score_again"
        name: "Score Again"
""")

# the schedule line under which the base config holds its cron
DST_NY = tz("America/New_York")

LONG = "x" * 4096
EMOJI = "\U0001F697"  # 🚗, 4 bytes in UTF-8, a surrogate pair in JSON's \u form

CASES: list[Case] = [
    # --- the base and ordinary variations -----------------------------------------------------
    ok("base", lambda t: t),
    ok("base-fargate", FARGATE),
    ok("owner-airflow", sub('orchestrator: "step_functions"', 'orchestrator: "airflow"')),
    ok("schedule-disabled", sub("  enabled: true\n  cron", "  enabled: false\n  cron")),
    ok("on-demand", sub("    spot: true", "    spot: false")),

    # --- unicode everywhere ------------------------------------------------------------------
    ok("uni-description", sub('description: "Demo pipeline"',
                              'description: "Recomendação de veículos 🚗 — שלום עולם · مرحبا · e\\u0301 · 日本語"')),
    ok("uni-description-markdown", sub('description: "Demo pipeline"',
                                       'description: "# Title\\n\\n<script>alert(1)</script> | pipes | `code` *bold*"')),
    # PostgreSQL (Airflow's metadata DB on MWAA and in the compose stack) cannot store a NUL in text:
    # the DAG's description and a task's display name end up in its tables
    no("desc-nul", sub('description: "Demo pipeline"', 'description: "Demo\\0pipeline"'), "description", "NUL|null"),
    no("step-name-nul", step_name("Score\u0000Model"), "batch.pipeline.steps[1].name", "NUL|null"),
    # bytes that are not UTF-8 (a Latin-1 editor): written as is by the harness
    no("yaml-latin1", sub('description: "Demo pipeline"', 'description: "Recomenda\udce7\udce3o"'), "(top level)",
       "UTF-8"),
    ok("uni-step-name", step_name("Pontuação do modelo 🚀 ✓ — ثبت")),
    ok("uni-env-emoji", env("APP_ICON", q("🚗🚕🚙 ok"))),
    ok("uni-env-rtl", env("APP_GREETING", q("مرحبا بالعالم \u200f שלום"))),
    # combining characters (NFD): neither orchestrator may normalise them to NFC
    ok("uni-env-combining", env("APP_NAME", q("Jose\u0301 Mu\u0308ller n\u0303"))),
    ok("uni-env-zero-width", env("APP_SEP", q("a\u200bb\u2060c\ufeffd"))),
    ok("uni-command-arg", argv("python", "steps/score.py", "--label=café ☕", "--city=São Paulo")),
    ok("uni-emoji-500", env("APP_EMOJI", q(EMOJI * 500))),
    # step ids are Airflow task ids and ASL state names; esteira documents ASCII letters only
    no("uni-step-id", step_id("pontuação"), "batch.pipeline.steps[1].id", "letters"),
    no("uni-step-id-homoglyph", step_id("sc\u043ere"), "batch.pipeline.steps[1].id", "letters"),

    # --- quotes, backslashes, $, %, newlines, tabs --------------------------------------------
    ok("env-quotes", env("APP_QUOTE", q("He said \"hi\" and it's 'fine'"))),
    ok("env-backslash", env("APP_PATH", q("C:\\data\\new\\t.csv \\\\server\\share \\n"))),
    ok("env-dollar-alone", env("APP_PRICE", q("US$ 5 and 10 $"))),
    ok("env-percent", env("APP_FMT", q("%(asctime)s %Y-%m-%d 100% %s %%"))),
    ok("env-newline", env("APP_MULTI", q("line one\nline two"))),
    # Jinja drops one trailing newline of what it renders (keep_trailing_newline is off by default)
    ok("env-trailing-newline", env("APP_PEM", q("-----BEGIN X-----\nAAAA\n-----END X-----\n"))),
    ok("env-tab-cr", env("APP_TAB", q("a\tb\rc"))),
    ok("env-empty", env("APP_EMPTY", '""')),
    ok("env-json", env("APP_JSON", q('{"a": {"b": [1, 2]}, "c": "}"}'))),
    ok("env-braces", env("APP_PATTERN", q("{name}-{date}.csv {0}"))),
    ok("env-yaml-special", env("APP_YAML", q("- a: b # not a comment & *no alias !tag"))),
    # an env value is data: ECS passes it on as written, so both orchestrators must too. cfn-lint
    # E1029 fails a stack holding ${...} in a plain string (shared/NOTES.md): the stack must escape it
    ok("env-dollar-brace", env("APP_DIR", q("${HOME}/data"))),
    ok("step-env-dollar-brace", step_env("APP_DIR", q("/data/${RUN_DATE}"))),
    # Airflow renders env values and command arguments with Jinja, the ASL keeps them literal: the
    # DAG must hand them over literally (parity below checks the rendered values byte for byte)
    ok("env-jinja", env("APP_DAY", q("{{ ds }}"))),
    ok("env-jinja-block", env("APP_FLAG", q("{% if true %}on{% endif %}"))),
    ok("env-jinja-comment", env("APP_NOTE", q("keep {# this #} text"))),
    ok("step-env-jinja", step_env("APP_DAY", q("{{ macros.ds_add(ds, 1) }}"))),
    ok("env-jinja-raw", env("APP_RAW", q("{% raw %}{{ x }}{% endraw %} '\\ \" }}"))),
    # execve(2) cannot pass a NUL inside a string
    no("env-nul", env("APP_BIN", q("a\u0000b")), "runtime.env_vars.APP_BIN", "NUL|null"),
    ok("cmd-quotes", argv("python", "steps/score.py", "--msg", 'say "hi"', "it's")),
    ok("cmd-string-quotes", cmd(q("python steps/score.py --msg 'hello world' \"it's\"")),
       note="shlex: one argument per quoted part"),
    ok("cmd-backslash", argv("python", "-c", "print('a\\\\b\\n')", "C:\\tmp")),
    ok("cmd-dollar-literal", argv("python", "steps/score.py", "--currency=US$", "--cost=5$")),
    ok("cmd-percent", argv("python", "steps/score.py", "--fmt=%Y-%m-%d", "100%")),
    # asl-validator refuses a line break in a Command element ("must match exactly one schema in
    # oneOf"; it takes them in Environment values), so one cannot reach Step Functions through our validators
    no("cmd-newline-arg", argv("python", "-c", "import sys\nprint(sys.argv)"), "batch.pipeline.steps[1].command",
       "newline|line break|\\n"),
    ok("cmd-tab-arg", argv("python", "steps/score.py", "a\tb")),
    # U+2028 is a line terminator to JavaScript's regular expressions, hence to asl-validator
    no("cmd-line-separator", argv("python", "steps/score.py", "a\u2028b"), "batch.pipeline.steps[1].command",
       "line|u2028"),
    no("cmd-carriage-return", argv("python", "steps/score.py", "a\rb"), "batch.pipeline.steps[1].command",
       "line|\\r|carriage"),
    ok("env-jsonpath-like", chain(env("APP_PATH", q("$.esteira.run_date")), env("APP_FN", q("States.Format('{}', $.x)")))),
    ok("env-line-separator", env("APP_PARA", q("a\u2028b\u2029c\x85d"))),
    ok("env-spaces-only", env("APP_BLANK", q("   "))),
    ok("cmd-many-args", cmd("[" + ", ".join(['"python"', '"steps/score.py"'] + [q(f"--flag{i}") for i in range(300)]) + "]")),
    ok("cmd-long-arg", argv("python", "steps/score.py", "--ids=" + "1," * 1500)),
    ok("cmd-dash-args", argv("python", "-", "--", "-x", "--")),
    # AWS's container APIs refuse an empty command element ("Command cannot be empty": AWS Batch
    # SubmitJob, boto/boto3#3612); an empty argument is almost always a quoting mistake anyway
    no("cmd-empty-arg", argv("python", "steps/score.py", ""), "batch.pipeline.steps[1].command", "empty"),
    no("cmd-empty-list", cmd("[]"), "batch.pipeline.steps[1].command", "empty"),
    no("cmd-nul", argv("python", "steps/score.py", "a\u0000b"), "batch.pipeline.steps[1].command", "NUL|null"),
    # README: commands run without a shell, "$VAR" is refused; inside an argument it is no less a variable
    no("cmd-dollar-token", cmd(q("python steps/score.py $HOME")), "batch.pipeline.steps[1].command", "expanded"),
    no("cmd-dollar-inside", argv("python", "steps/score.py", "--out=${DATA_ROOT}/x"), "batch.pipeline.steps[1].command",
       "expanded"),
    no("cmd-backtick", cmd(q("python steps/score.py `date`")), "batch.pipeline.steps[1].command", "shell"),
    ok("cmd-jinja", argv("python", "steps/score.py", "--date={{ ds }}")),
    ok("cmd-jinja-string", cmd(q("python steps/score.py --date '{{ ds }}'"))),
    ok("cmd-jinja-split", cmd(q("python steps/score.py {{ ds }}")),
       note="shlex splits it into '{{', 'ds', '}}': Jinja cannot render a lone '{{'"),
    no("cmd-not-strings", cmd('["python", 3]'), "batch.pipeline.steps[1].command", "string"),
    # RunTask containerOverrides: 8192 characters in all (ECS API reference, ContainerOverride)
    no("cmd-over-8192", argv("python", "steps/score.py", "--ids=" + "1," * 4200), "batch.pipeline.steps[1]", "8192"),

    # --- long values near the limits ------------------------------------------------------------
    ok("step-name-200", step_name("N" * 200)),
    ok("step-name-newline", step_name("Score\nModel | `x` ${NAME} {{ y }}")),
    ok("desc-dollar-brace", sub('description: "Demo pipeline"', 'description: "costs ${PRICE} */ {{ no }}"')),
    ok("step-name-200-emoji", step_name(EMOJI * 200)),
    no("step-name-201", step_name("N" * 201), "batch.pipeline.steps[1].name", "200"),
    no("step-name-empty", step_name(""), "batch.pipeline.steps[1].name", "1"),
    ok("step-id-70", step_id("s" * 70)),
    no("step-id-71", step_id("s" * 71), "batch.pipeline.steps[1].id", "70"),
    ok("env-value-4096", env("APP_BIG", q(LONG))),
    no("env-value-4097", env("APP_BIG", q(LONG + "x")), "runtime.env_vars.APP_BIG", "4096"),
    no("env-two-4096", chain(env("APP_BIG", q(LONG)), env("APP_BIG2", q(LONG))), "batch.pipeline.steps[0]", "8192"),
    ok("env-150-vars", chain(*[env(f"APP_V{i:03d}", q(str(i))) for i in range(150)])),
    no("env-250-vars", chain(*[env(f"APP_V{i:03d}", q(str(i))) for i in range(250)]), "batch.pipeline.steps[0]", "8192"),
    ok("desc-10k", sub('description: "Demo pipeline"', f"description: {q('Texto longo. ' * 800)}")),
    ok("steps-200", chain_of(200)),
    no("steps-201", chain_of(201), "batch.pipeline.steps", "200"),
    # a shared environment is written once in the state machine (esteira.asl's `esteira.shared`), so 200
    # steps fit with a 4 KiB runtime env; 200 different 4 KiB step envs do not: over Step Functions'
    # 1,048,576-byte definition (and CloudFormation's 1 MB template) limit
    ok("steps-200-big-env", chain(chain_of(200), env("APP_BIG", q(LONG)))),
    no("steps-200-big-own-env", chain(chain_of(200), own_env(LONG[:4000])), "batch.pipeline.steps", "bytes"),
    ok("chain-100", chain_of(100)),
    ok("fan-out-60", steps([("root", [])] + [(f"leaf{i:02d}", ["root"]) for i in range(60)])),
    ok("fan-in-60", steps([(f"src{i:02d}", []) for i in range(60)] + [("sink", [f"src{i:02d}" for i in range(60)])])),
    ok("fan-out-in-60", steps([("root", [])] + [(f"mid{i:02d}", ["root"]) for i in range(60)]
                              + [("sink", [f"mid{i:02d}" for i in range(60)])])),
    ok("all-roots-30", steps([(f"r{i:02d}", []) for i in range(30)])),
    ok("nested-diamonds-15", steps([("d00", [])] + [x for i in range(1, 16) for x in (
        (f"l{i:02d}", [f"d{i - 1:02d}"]), (f"r{i:02d}", [f"d{i - 1:02d}"]), (f"d{i:02d}", [f"l{i:02d}", f"r{i:02d}"]))])),
    ok("not-series-parallel", steps([("a", []), ("b", []), ("c", ["a", "b"]), ("d", ["b"])])),
    ok("deps-out-of-order", steps([("late", ["early"]), ("early", [])])),
    # a zig-zag ladder is as far from series-parallel as a DAG gets: the state machine's cut must stay
    # fast (the DAG processor parses every project in one file, with a 30 s default timeout)
    ok("ladder-100", steps([(f"a{i:02d}", [f"a{i - 1:02d}"] if i else []) for i in range(50)]
                           + [(f"b{i:02d}", [f"b{i - 1:02d}", f"a{i - 1:02d}"] if i else []) for i in range(50)])),

    # --- step ids that look like esteira's own state names --------------------------------------
    # a valid step id: its helper state "esteira.failed" must not be esteira's own end state of that name
    no("id-esteira", step_id("esteira"), "batch.pipeline.steps[1].id", "reserved",
       note="its helper state esteira.failed would be the machine's own end state"),
    # asl-validator (which the ASL must pass) takes a state named like an ASL field for that field:
    # "Next", "StartAt" and "Default" give MISSING_TRANSITION_TARGET, "States", "Branches" and
    # "Iterator" crash it ("Validator exception: TypeError ..."); statelint takes them all
    no("id-states", step_id("States"), "batch.pipeline.steps[1].id", "ASL|States Language|reserved"),
    no("id-next", step_id("Next"), "batch.pipeline.steps[1].id", "ASL|States Language|reserved"),
    no("id-branches", step_id("Branches"), "batch.pipeline.steps[1].id", "ASL|States Language|reserved"),
    no("id-iterator", step_id("Iterator"), "batch.pipeline.steps[1].id", "ASL|States Language|reserved"),
    no("id-startat", step_id("StartAt"), "batch.pipeline.steps[1].id", "ASL|States Language|reserved"),
    no("id-default", step_id("Default"), "batch.pipeline.steps[1].id", "ASL|States Language|reserved"),
    ok("id-asl-words", steps([("Type", []), ("End", ["Type"]), ("Comment", ["End"]), ("Resource", ["Comment"]),
                              ("Retry", ["Resource"]), ("Catch", ["Retry"])])),
    ok("id-parallel-1", step_id("parallel-1")),
    ok("id-choices", step_id("Choices")),
    no("id-itemprocessor", step_id("ItemProcessor"), "batch.pipeline.steps[1].id", "reserved"),
    ok("id-esteira-parallel", step_id("esteira-parallel-1")),
    ok("id-run-like", step_id("score_model-run")),
    ok("id-state-types", steps([("Parallel", []), ("Choice", ["Parallel"]), ("Pass", ["Choice"]), ("Fail", ["Pass"]),
                                ("Succeed", ["Fail"])])),
    ok("id-suffix-words", steps([("ok", []), ("failed", []), ("outcome", ["ok", "failed"]), ("run", ["outcome"])])),
    ok("id-branch-like", steps([("branch-1", []), ("branch-2", []), ("join", ["branch-1", "branch-2"])])),
    no("id-dotted-start", step_id("esteira.start"), "batch.pipeline.steps[1].id", "letters"),
    no("id-dotted-run", step_id("extract_features.run"), "batch.pipeline.steps[1].id", "letters"),
    no("id-dotted-parallel", step_id("esteira.parallel-1"), "batch.pipeline.steps[1].id", "letters"),
    no("id-leading-dash", step_id("-score"), "batch.pipeline.steps[1].id", "letters"),
    no("id-numeric", sub('id: "score_model"', "id: 123"), "batch.pipeline.steps[1].id", "text|string"),
    # Airflow keeps a task's logs in a folder named by task id: on a case-insensitive file system
    # (macOS laptops, the local backend's home) "Score" and "score" share one folder
    no("id-case-only", steps([("Score", []), ("score", ["Score"])]), "batch.pipeline.steps[1].id", "case"),
    no("id-duplicate", steps([("a", []), ("a", [])]), "batch.pipeline.steps[1].id", "duplicate"),

    # --- every cron form ------------------------------------------------------------------------
    ok("cron-hourly", cron("@hourly")),
    ok("cron-daily", cron("@daily")),
    ok("cron-midnight", cron("@midnight")),
    ok("cron-weekly", cron("@weekly")),
    ok("cron-monthly", cron("@monthly")),
    ok("cron-yearly", cron("@yearly")),
    ok("cron-annually", cron("@annually")),
    no("cron-reboot", cron("@reboot"), "schedule.cron", "@reboot"),
    ok("cron-list", cron("0 3,15 * * *")),
    ok("cron-range", cron("0 9-17 * * 1-5")),
    ok("cron-step", cron("*/15 * * * *")),
    ok("cron-range-step", cron("5 8-20/4 * * *")),
    ok("cron-names", cron("30 4 * JAN-MAR MON-FRI")),
    ok("cron-lower-names", cron("0 6 * * sun")),
    ok("cron-dow-7", cron("0 6 * * 7")),
    ok("cron-dow-range-7", cron("0 6 * * 5-7")),
    ok("cron-every-minute", cron("* * * * *")),
    ok("cron-feb-29", cron("0 0 29 2 *"), note="fires in leap years"),
    ok("cron-31st", cron("0 0 31 * *"), note="fires in the seven 31-day months"),
    ok("cron-dom-full-range", cron("0 3 1-31 * MON"), note="a day-of-month written out in full, beside a weekday"),
    ok("cron-whitespace", cron(" 0\t3  * *\t* ")),
    ok("cron-dom-step", cron("0 0 1-31/2 * *")),
    ok("cron-new-year-eve", cron("59 23 31 12 *")),
    ok("cron-sunday-twice", cron("0 0 * * 0,7")),
    ok("cron-name-list", cron("0 0 * JAN,jul MON,wed,FRI")),
    no("cron-step-zero", cron("*/0 * * * *"), "schedule.cron", ""),
    no("cron-dow-8", cron("0 0 * * 8"), "schedule.cron", ""),
    no("cron-upper-alias", cron("@DAILY"), "schedule.cron", "@DAILY"),
    # a short cron whose value lists, written out, pass EventBridge's 256 characters. AWS cron takes
    # ", - * /" in every field (EventBridge "Cron expressions reference") and follows Quartz, whose list
    # items may be ranges, so "cron(0-29,31-59 0-11,13-23 1-14,16-31 * ? *)" says the same (no AWS page
    # shows a range inside a list: if AWS refused that form, this case would become a REFUSE)
    ok("cron-long-lists", cron("0-29,31-59 0-11,13-23 1-14,16-31 * *")),
    # a cron that never fires: Airflow's timetable finds no next run, EventBridge accepts it and idles
    no("cron-never-apr-31", cron("0 0 31 4 *"), "schedule.cron", "never"),
    no("cron-never-feb-30", cron("0 0 30 2 *"), "schedule.cron", "never"),
    no("cron-six-fields", cron("0 0 3 * * *"), "schedule.cron", "5"),
    no("cron-aws-syntax", cron("cron(0 3 * * ? *)"), "schedule.cron", "cron"),
    no("cron-last-day", cron("0 0 L * *"), "schedule.cron", "not standard"),
    no("cron-hashed", cron("H 3 * * *"), "schedule.cron", "not standard"),
    no("cron-empty", cron(""), "schedule.cron", "5"),
    # EventBridge Scheduler skips a cron time in the spring-forward gap ("When the time shifts
    # forward in Spring, your schedule invocation gets skipped", AWS knowledge center
    # eventbridge-scheduler-adjust-dst); esteira's Airflow timetable skips it too (Airflow's own
    # CronTriggerTimetable would run it at 03:30): both orchestrators run the same days
    ok("cron-dst-gap-ny", chain(cron("30 2 * * *"), DST_NY), note="no run on spring-forward day, on both"),
    ok("cron-dst-gap-lisbon", chain(cron("30 1 * * *"), tz("Europe/Lisbon")), note="no run on spring-forward day"),
    # an hourly cron in the fall-back overlap: EventBridge fires the repeated hour once, and so does
    # esteira's timetable (CronTriggerTimetable would fire it twice)
    ok("cron-dst-overlap-hourly", chain(cron("0 * * * *"), DST_NY)),
    ok("cron-dst-safe-ny", chain(cron("0 3 * * *"), DST_NY), note="03:00 exists once every day in New York"),
    ok("cron-no-dst-sao-paulo", chain(cron("30 0 * * *"), tz("America/Sao_Paulo")),
       note="Brazil has had no DST since 2019"),
    ok("cron-weekday-tz", chain(cron("15 9 * * 1-5"), tz("Asia/Kolkata"))),

    # --- time zones -----------------------------------------------------------------------------
    ok("tz-utc", tz("UTC")),
    ok("tz-etc-utc", tz("Etc/UTC")),
    ok("tz-kathmandu", tz("Asia/Kathmandu")),
    ok("tz-etc-gmt-plus-3", tz("Etc/GMT+3")),
    # EventBridge Scheduler takes the canonical IANA names (the CDK's TimeZone class, which lists
    # what AWS's schedulers take, holds only canonical zones: aws-cdk core/lib/time-zone.ts);
    # US/Eastern is a backward-compatibility link of tzdata
    no("tz-alias-us-eastern", tz("US/Eastern"), "schedule.timezone", "America/New_York"),
    no("tz-alias-calcutta", tz("Asia/Calcutta"), "schedule.timezone", "Asia/Kolkata"),
    ok("tz-kiritimati-start", chain(tz("Pacific/Kiritimati"), sched("start_date: 2030-06-01")), note="UTC+14"),
    no("tz-lowercase", tz("america/new_york"), "schedule.timezone", "IANA"),
    no("tz-padded", tz(" UTC"), "schedule.timezone", "IANA"),
    no("tz-offset", tz("UTC+3"), "schedule.timezone", "IANA"),
    no("tz-path", tz("../../../etc/passwd"), "schedule.timezone", "IANA"),

    # --- start_date -----------------------------------------------------------------------------
    # EventBridge never runs past instants: catchup on a Step-Functions-owned schedule is refused,
    # pointing to `esteira backfill`; an Airflow-owned schedule catches up in Airflow
    no("start-catchup-aws", chain(sched("catchup: true"), sched("start_date: 2026-01-01")), "schedule.catchup",
       "esteira backfill start-catchup-aws --from 2026-01-01"),
    ok("start-catchup-airflow-owned", chain(sched("catchup: true"), sched("start_date: 2026-01-01"),
                                            sub('orchestrator: "step_functions"', 'orchestrator: "airflow"'))),
    # EventBridge must not fire before start_date either: the schedule carries it as StartDate
    ok("start-future", sched("start_date: 2030-06-01")),
    ok("start-future-tz", chain(sched("start_date: 2030-06-01"), tz("America/Sao_Paulo"))),
    ok("start-quoted", sched('start_date: "2026-01-01"')),
    no("start-datetime", sched("start_date: 2026-01-01T10:30:00"), "schedule.start_date", "date"),
    no("start-impossible", sched("start_date: 2026-02-30"), "schedule.start_date", "2026-02-30"),
    no("start-1969", sched("start_date: 1969-12-31"), "schedule.start_date", "1970"),

    # --- resources --------------------------------------------------------------------------------
    ok("cpu-eighth", resources(cpu="0.125")),
    ok("cpu-int", resources(cpu="2")),
    ok("memory-half", resources(mem="0.5")),
    ok("memory-sci", resources(mem="8.0e+0")),
    ok("cpu-odd-fraction", resources(cpu="0.3333")),
    ok("memory-odd-fraction", resources(mem="1.0001")),
    # RegisterTaskDefinition cpu on EC2: "between 128 CPU units (0.125 vCPUs) and 196608 CPU units"
    no("cpu-below-128", resources(cpu="0.1"), "batch.pipeline.steps[1].resources", "128|0.125"),
    no("cpu-tiny", resources(cpu="0.0001"), "batch.pipeline.steps[1].resources", "128|0.125"),
    # ContainerDefinition memory: Docker reserves at least 6 MiB, "don't specify less than 6 MiB"
    no("memory-tiny", resources(mem="0.001"), "batch.pipeline.steps[1].resources", "MiB"),
    no("cpu-string", resources(cpu='"2"'), "batch.pipeline.steps[1].resources.cpu", "number"),
    # t3.xlarge: 4 vCPU, 16 GiB; ECS reserves some memory, so a task never fits in all 16 GiB
    ok("cpu-equal-instance", resources(cpu="4.0")),
    no("cpu-over-instance", resources(cpu="8.0"), "batch.pipeline.steps[1].resources", "t3.xlarge"),
    no("memory-over-instance", resources(mem="32"), "batch.pipeline.steps[1].resources", "t3.xlarge"),
    no("memory-whole-instance", resources(mem="16"), "batch.pipeline.steps[1].resources", "t3.xlarge"),
    no("task-over-t2-micro", ec2_type("t2.micro"), "batch.pipeline.steps", "t2.micro"),
    ok("ec2-c5-2xlarge", ec2_type("c5.2xlarge")),
    ok("ec2-gpu", ec2_type("g5.xlarge")),
    ok("ec2-cpu-192", chain(ec2_type("c7i.48xlarge"), resources(cpu="192"))),
    no("ec2-type-unknown", ec2_type("t3.mega"), "infra.compute.ec2_type", "t3.mega"),
    no("ec2-family-unknown", ec2_type("t9.large"), "infra.compute.ec2_type", "t9.large"),
    no("ec2-type-upper", ec2_type("T3.XLARGE"), "infra.compute.ec2_type", ""),
    # the launch template runs the x86_64 ECS-optimised AMI and the image is built for x86_64
    no("ec2-graviton", ec2_type("m7g.2xlarge"), "infra.compute.ec2_type", "arm64|Graviton"),
    ok("fargate-max", chain(FARGATE, resources(cpu="16", mem="120"))),
    ok("fargate-quarter", chain(FARGATE, resources(cpu="0.25", mem="0.5"))),
    ok("fargate-on-demand", chain(FARGATE, sub("    spot: true", "    spot: false"))),
    no("fargate-bad-size", chain(FARGATE, resources(cpu="3")), "batch.pipeline.steps[1].resources", "Fargate"),
    ok("quantity-1000", sub("max_quantity: 2", "max_quantity: 1000")),
    no("quantity-zero", sub("max_quantity: 2", "max_quantity: 0"), "infra.compute.max_quantity", "1"),

    # --- secrets ----------------------------------------------------------------------------------
    ok("secret-ssm", secrets('    DB_PASSWORD: "ssm:/demo/db-password"\n')),
    ok("secret-sm", secrets('    API_TOKEN: "secretsmanager:demo/api-token"\n')),
    ok("secret-ssm-no-slash", secrets('    DB_PASSWORD: "ssm:demo/db"\n')),
    ok("secrets-40", secrets("".join(f'    SECRET_{i:02d}: "ssm:/demo/s{i:02d}"\n' for i in range(40)))),
    # the task execution role lists each secret's ARN; IAM caps a role's inline policies at 10,240
    # characters in all (IAM quotas), so this stack fails to deploy
    no("secrets-150", secrets("".join(f'    SECRET_{i:03d}: "ssm:/demo/team/pipeline/secret-{i:03d}"\n' for i in range(150))),
       "runtime.secrets", "policy|10240|10,240"),
    no("secret-unicode", secrets('    DB_PASSWORD: "ssm:/demo/sénha"\n'), "runtime.secrets.DB_PASSWORD", "ssm"),
    no("secret-reserved", secrets('    RUN_ID: "ssm:/demo/x"\n'), "runtime.secrets.RUN_ID", "esteira"),

    # --- notifications ----------------------------------------------------------------------------
    ok("notify-many", notify([f"ml{i}@rentcars.com" for i in range(20)], [f"ops{i}@rentcars.com" for i in range(30)])),
    ok("notify-same-case", notify(["Ops@RentCars.com"], ["ops@rentcars.com", "OPS@rentcars.com"])),
    ok("notify-plus", notify(["ml+success@rentcars.com"], ["ml+failure@rentcars.com"])),
    ok("notify-none", notify([], [])),
    ok("notify-display-name", notify(["ML Team <ml@rentcars.com>"], ["On Call <oncall@rentcars.com>"])),
    no("notify-scalar", sub('  on_failure:\n    - "oncall@rentcars.com"', '  on_failure: "oncall@rentcars.com"'),
       "notifications.on_failure", "list"),
    # a CloudFormation template holds at most 500 resources (cfn-lint E3010; CloudFormation quotas)
    no("notify-600", notify([], [f"ops{i}@rentcars.com" for i in range(600)]), "notifications", "500"),
    no("notify-bad", notify([], ["not-an-email"]), "notifications.on_failure[0]", "email"),

    # --- YAML oddities ----------------------------------------------------------------------------
    ok("yaml-anchors", ANCHORS),
    ok("yaml-merge-keys", MERGE_KEYS),
    ok("yaml-flow-style", whole(FLOW_STYLE)),
    ok("yaml-crlf", crlf),
    ok("yaml-bom", bom),
    ok("yaml-bom-crlf", lambda t: bom(crlf(t))),
    ok("yaml-literal-block", sub('description: "Demo pipeline"', "description: |\n  Line one\n  Line two\n")),
    ok("yaml-folded-command", cmd(">-\n          python steps/score.py\n          --fast")),
    ok("yaml-tab-in-quotes", sub('name: "Score Model"', 'name: "Score\tModel"')),
    ok("yaml-comments", sub('cron: "0 3 * * *"', 'cron: "0 3 * * *"   # every day # at 3')),
    ok("yaml-int-underscore", sub("  retries: 2", "  retries: 1_0")),
    ok("yaml-quoted-keys", lambda t: t.replace("project_name:", '"project_name":').replace("  cron:", "  'cron':")),
    ok("yaml-bool-yes", sub("    spot: true", "    spot: yes")),
    ok("yaml-doc-markers", lambda t: "---\n" + t + "...\n"),
    ok("yaml-trailing-whitespace", lambda t: t.replace('"dev"\n', '"dev"  \t\n').replace("retries: 2\n", "retries: 2 \n")),
    ok("yaml-plain-multiline", sub('description: "Demo pipeline"', "description: a plain scalar\n  over two lines")),
    ok("yaml-literal-command", cmd("|\n          python\n          steps/score.py --fast\n")),
    ok("env-names-case", chain(env("APP_MODE", '"a"'), env("App_Mode", '"b"'), env("app_mode", '"c"'))),
    # YAML 1.1 reads 010 as the octal number 8: a user writing ten retries gets eight
    no("yaml-octal-retries", sub("  retries: 2", "  retries: 010"), "schedule.retries", "octal|010"),
    no("yaml-python-float", sub('python_version: "3.11"', "python_version: 3.10"), "runtime.python_version", '"3.10"'),
    no("yaml-tab-indent", sub("  retries: 2\n", "\tretries: 2\n"), "(top level)", "YAML"),
    no("yaml-version-float", sub('version: "1.0.0"', "version: 1.0"), "version", "quote"),
    no("yaml-env-int", env("APP_PORT", "8080"), "runtime.env_vars.APP_PORT", "quote"),
    # YAML 1.1 reads 0755 as the octal number 493
    no("yaml-env-octal", env("APP_MODE", "0755"), "runtime.env_vars.APP_MODE", '"0755"'),
    no("yaml-env-on", env("APP_FLAG", "on"), "runtime.env_vars.APP_FLAG", '"on"'),
    no("yaml-env-null", env("APP_EMPTY", ""), "runtime.env_vars.APP_EMPTY", "text|string"),
    no("yaml-env-date", env("APP_DAY", "2026-01-01"), "runtime.env_vars.APP_DAY", "quote"),
    no("yaml-bool-string", sub("  enabled: true\n  cron", '  enabled: "true"\n  cron'), "schedule.enabled", "boolean"),
    no("yaml-two-docs", lambda t: t + "---\nproject_name: demo\n", "(top level)", "2"),
    no("yaml-tagged", env("APP_BIN", "!!binary aGVsbG8="), "(top level)", "tag"),
    no("yaml-depends-scalar", sub('        name: "Score Model"\n', '        name: "Score Model"\n        depends_on: extract_features\n'),
       "batch.pipeline.steps[1].depends_on", "list"),

    # --- versions: the image tag <project>-<version> and the DAG tag version:<version> -------------
    ok("version-92", sub('version: "1.0.0"', f'version: "{"9" * 92}"')),
    no("version-93", sub('version: "1.0.0"', f'version: "{"9" * 93}"'), "version", "100"),
    ok("version-v-prefix", sub('version: "1.0.0"', 'version: "v1.2.3-rc.1_build7"')),
    ok("version-latest", sub('version: "1.0.0"', 'version: "latest"')),
    no("version-semver-build", sub('version: "1.0.0"', 'version: "1.0.0+build.5"'), "version", "version|tag"),
    no("version-unicode", sub('version: "1.0.0"', 'version: "1.0.0-β"'), "version", "version|tag"),

    # --- other limits -------------------------------------------------------------------------------
    ok("retries-25", sub("  retries: 2", "  retries: 25")),
    ok("timeout-one-year", sub("timeout_seconds: 3600", "timeout_seconds: 31536000")),
    no("timeout-over-year", sub("timeout_seconds: 3600", "timeout_seconds: 31536001"), "schedule.timeout_seconds",
       "31536000"),
    ok("retry-delay-day", sched("retry_delay_seconds: 86400")),
    ok("step-retries-zero", sub('        name: "Score Model"\n', '        name: "Score Model"\n        retries: 0\n')),
    # the infrastructure budget (spot interruptions...): its own bounds, per step too; 0 leaves no loop
    ok("infra-retries-zero", sched("infra_retries: 0")),
    ok("infra-retries-ten", chain(sched("infra_retries: 10"), sched("infra_retry_delay_seconds: 3600"))),
    no("infra-retries-eleven", sched("infra_retries: 11"), "schedule.infra_retries", "10"),
    no("infra-retries-negative", sched("infra_retries: -1"), "schedule.infra_retries", "0"),
    no("infra-delay-zero", sched("infra_retry_delay_seconds: 0"), "schedule.infra_retry_delay_seconds", "1"),
    ok("step-infra-retries-zero-app-zero", sub('        name: "Score Model"\n',
                                               '        name: "Score Model"\n        retries: 0\n        infra_retries: 0\n')),
    no("infra-retries-text", sched('infra_retries: "3"'), "schedule.infra_retries", "integer"),
    # runs at once: 1 by default (point-in-time), up to 32
    ok("max-active-runs-32", sched("max_active_runs: 32")),
    no("max-active-runs-zero", sched("max_active_runs: 0"), "schedule.max_active_runs", "1"),
    no("max-active-runs-bool", sched("max_active_runs: true"), "schedule.max_active_runs", "integer"),
    ok("step-timeout-equal", sub('        name: "Score Model"\n', '        name: "Score Model"\n        timeout_seconds: 3600\n')),
    ok("env-override-env", chain(sub('    ENV: "dev"', '    ENV: "prd"'), step_env("ENV", '"local"'))),
    ok("env-step-overrides", chain(env("APP_X", '"runtime"'), step_env("APP_X", '"step"'))),
    ok("env-lowercase-name", env("app_lower", '"x"')),
    no("env-dash-name", env("APP-X", '"x"'), "runtime.env_vars.APP-X", "environment variable name"),
    no("env-aws-key", env("AWS_ACCESS_KEY_ID", '"AKIA..."'), "runtime.env_vars.AWS_ACCESS_KEY_ID", "secret"),
    ok("log-retention-10y", sub("    spot: true\n", "    spot: true\n  log_retention_days: 3653\n")),
    ok("python-313", sub('python_version: "3.11"', 'python_version: "3.13"')),
    no("python-patch", sub('python_version: "3.11"', 'python_version: "3.11.4"'), "runtime.python_version", "3"),
    # S3 triggers (issue 14): what a key may hold reaches an EventBridge pattern, an input transformer,
    # the state machine's input and Airflow's conf
    ok("trigger-plain", trigger("rentcars-ml-{env}-inbox", prefix="incoming/", suffix=".parquet")),
    ok("trigger-bucket-only", trigger("rentcars-ml-inbox")),
    ok("trigger-unicode-prefix", trigger("rentcars-ml-inbox", prefix="entrada/ção/日本/", suffix=".csv")),
    ok("trigger-wildcard-chars", trigger("rentcars-ml-inbox", prefix="in*coming/?", suffix="*.csv")),
    ok("trigger-quotes-backslash", trigger("rentcars-ml-inbox", prefix='a"b\\c/', suffix="'.json")),
    ok("trigger-with-airflow", chain(trigger("rentcars-ml-inbox", prefix="in/"),
                                     sub('orchestrator: "step_functions"', 'orchestrator: "airflow"'))),
    ok("trigger-braces", trigger("rentcars-ml-inbox", prefix="{x}/<aws.events.event>/")),
    no("trigger-bucket-upper", trigger("Rentcars-Inbox"), "trigger.s3.bucket", "bucket"),
    no("trigger-bucket-dots", trigger("rentcars..inbox"), "trigger.s3.bucket", "bucket"),
    no("trigger-bucket-ip", trigger("192.168.1.10"), "trigger.s3.bucket", "bucket"),
    no("trigger-prefix-slash", trigger("rentcars-ml-inbox", prefix="/in/"), "trigger.s3.prefix", "/"),
    no("trigger-prefix-control", trigger("rentcars-ml-inbox", prefix="in\u0007/"), "trigger.s3.prefix", "control"),
    no("trigger-unknown-field", sub("\ninfra:", "\ntrigger:\n  s3:\n    bucket: b-123\n    sufix: .csv\ninfra:"),
       "trigger.s3", "sufix"),
]

ACCEPT = [c for c in CASES if c.accept]
REFUSE = [c for c in CASES if not c.accept]
BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "duplicate case id"
