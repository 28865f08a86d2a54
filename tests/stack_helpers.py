"""Run the docker-compose stack's services as local processes on 127.0.0.1 (no Docker engine here).

The compose file is the source of truth: the Airflow environment, the MLflow command, the
PostgreSQL init SQL and the health checks are read from it and only re-addressed (container
hostnames and ports -> 127.0.0.1 and free ports, container paths -> the repo and a temp dir),
so the test proves the configuration a user gets from `docker compose up`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
CHROMIUM = Path("/usr/bin/chromium")
# Flags this machine needs: no sandbox as root, and no background calls to the closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETUP_HINT = "run scripts/setup-e2e.sh (PostgreSQL, Chromium, requirements-e2e.txt)"


def missing_setup(what: str) -> None:
    """Skip, saying what is missing; under `make test` (ESTEIRA_E2E_REQUIRED=1) fail instead, so CI
    can never pass with the stack tests quietly skipped."""
    message = f"missing {what}: {SETUP_HINT}"
    if os.environ.get("ESTEIRA_E2E_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


# ---------------------------------------------------------------------------------------------
# The compose file, read as the test needs it
# ---------------------------------------------------------------------------------------------

def load_compose() -> dict[str, Any]:
    """docker-compose.yaml as plain data (YAML anchors and merge keys resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    """The values .env.example documents: what `${VAR:-default}` becomes for a user who copied it."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def user_dotenv() -> dict[str, str]:
    """A user's .env as the README makes it: .env.example with a generated JWT secret."""
    return {**env_example(), "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(64)}


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$`, as `docker compose` does them."""
    def one(match: re.Match[str]) -> str:
        name, op, default = match["name"], match["op"], match["default"] or ""
        value = values.get(name)
        if op and op.endswith("-") and not value:
            return default
        if op and op.endswith("?") and not value:
            raise KeyError(f"{name} must be set: {default}")
        return value or ""
    return _VAR.sub(one, text.replace("$$", "\0")).replace("\0", "$")


@dataclass(frozen=True)
class Addresses:
    """Where each compose service lives on this machine, and the container paths it maps."""

    postgres_port: int
    mlflow_port: int
    api_port: int
    scheduler_health_port: int
    airflow_home: Path
    mlflow_artifacts: Path

    def hosts(self) -> dict[str, str]:
        return {
            "postgres:5432": f"127.0.0.1:{self.postgres_port}",
            "mlflow:5000": f"127.0.0.1:{self.mlflow_port}",
            "airflow-apiserver:8080": f"127.0.0.1:{self.api_port}",
            "localhost:8080": f"127.0.0.1:{self.api_port}",
            "localhost:8974": f"127.0.0.1:{self.scheduler_health_port}",
            "localhost:5000": f"127.0.0.1:{self.mlflow_port}",
        }

    def paths(self) -> dict[str, str]:
        return {"/opt/esteira": str(REPO), "/opt/airflow": str(self.airflow_home),
                "/mlflow/artifacts": str(self.mlflow_artifacts)}

    def translate(self, text: str) -> str:
        """A value from the compose file, re-addressed to this machine."""
        for old, new in {**self.hosts(), **self.paths()}.items():
            text = text.replace(old, new)
        return text


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

class AirflowApi:
    """The stack's api-server as its admin reaches it (a base for the stacks the tests start; they hold
    `addr`, `username` and `password`)."""

    addr: Addresses
    username: str
    password: str

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.addr.api_port}"

    def token(self) -> str:
        """A JWT from the api-server, as a REST client of Airflow 3 gets one."""
        body = http_json("POST", f"{self.api}/auth/token", {"username": self.username, "password": self.password})
        return str(body["access_token"])


def free_port() -> int:
    """A port nobody listens on now (the OS picks it; the small race is acceptable in a test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               explain: Callable[[], str] = lambda: "") -> None:
    """Poll `check` (fast at first, then every second) until it holds; fail with `explain()`."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s\n{explain()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def http_get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
    """(status, body); a refused connection is status 0, so pollers need no try/except."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def http_json(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30) -> Any:
    """A JSON request that must succeed: the error message carries the server's answer."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {url} -> {exc.code}: {exc.read().decode(errors='replace')[:2000]}") from None


@dataclass
class Service:
    """One long-running process of the stack, its output in a log file, stopped with its children."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- last lines of {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def terminate(self) -> None:
        """SIGTERM to the whole process group (api-server workers, task runners, MLflow's job runners)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, deadline: float) -> None:
        """Wait for the group leader until `deadline` (monotonic); then SIGKILL the group."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):  # leftovers of the group, if any
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@dataclass
class Processes:
    """Every process the stack started; `stop_all` ends them in reverse order, even after a failure."""

    logs: Path
    services: list[Service] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path | None = None) -> Service:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            # own session: the whole process tree (api-server workers, task runners) stops together
            proc = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        service = Service(name, proc, log)
        self.services.append(service)
        return service

    def check_alive(self) -> None:
        dead = [s for s in self.services if not s.alive()]
        if dead:
            raise RuntimeError("stopped unexpectedly:\n" + "\n".join(s.tail() for s in dead))

    def tails(self, lines: int = 40) -> str:
        return "\n".join(s.tail(lines) for s in self.services)

    def stop_all(self, grace: float = 10) -> dict[str, float]:
        """Stop every service at once (SIGTERM, then SIGKILL after `grace`); seconds each took."""
        started = time.monotonic()
        for service in reversed(self.services):
            service.terminate()
        took = {}
        for service in reversed(self.services):
            service.stop(started + grace)
            took[service.name] = round(time.monotonic() - started, 1)
        return took


def run(argv: list[str], env: Mapping[str, str] | None = None, timeout: float = 300,
        user: str | None = None) -> subprocess.CompletedProcess[str]:
    """A short command that must succeed; its output is in the error when it does not."""
    if user and os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, env=None if env is None else dict(env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


# ---------------------------------------------------------------------------------------------
# PostgreSQL (Debian's server, a throw-away cluster)
# ---------------------------------------------------------------------------------------------

def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server's bin folder, or None when the server is not installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


@dataclass
class Postgres:
    """A private cluster in a temp dir on 127.0.0.1:port.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
    (Debian's package creates it) and its commands run through runuser.
    """

    bindir: Path
    root: Path
    port: int
    superuser_password: str = "postgres"
    user: str | None = field(init=False, default=None)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "PGPASSWORD": self.superuser_password, "LANG": "C.UTF-8"}

    def start(self) -> None:
        if os.geteuid() == 0:
            self.user = "postgres"
            shutil.chown(self.root, self.user, self.user)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        if self.user:
            shutil.chown(pwfile, self.user, self.user)
        run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"], env=self.env(), user=self.user)
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"),
             "-o", options, "-w", "-t", "60", "start"], env=self.env(), user=self.user)

    def psql(self, sql: str, database: str = "postgres") -> None:
        """Run SQL as the superuser over TCP (as the compose init script runs it over the socket)."""
        run([str(self.bindir / "psql"), "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", database, "-c", sql], env=self.env())

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                    env=self.env(), user=self.user, timeout=60)

    def log_tail(self, lines: int = 30) -> str:
        log = self.root / "postgres.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "--- postgres.log ---\n" + "\n".join(text.splitlines()[-lines:])


def shared_tempdir(prefix: str) -> Path:
    """A temp dir outside pytest's root-only tmp tree, so the postgres user can use it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------------------------------------
# The compose services, started as the compose file describes them
# ---------------------------------------------------------------------------------------------

def base_env() -> dict[str, str]:
    """A clean environment (not pytest's: conftest points AIRFLOW_HOME at its sqlite home)."""
    keep = {k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ") if k in os.environ}
    return {**keep, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "VIRTUAL_ENV": str(VENV_BIN.parent),
            "PYTHONUNBUFFERED": "1"}


def service_env(service: dict[str, Any], addr: Addresses, values: dict[str, str]) -> dict[str, str]:
    """A compose service's `environment`, interpolated as for a user's .env and re-addressed."""
    return {k: addr.translate(interpolate(str(v), values)) for k, v in (service.get("environment") or {}).items()}


def start_compose_postgres(postgres: Postgres, compose: dict[str, Any], addr: Addresses,
                           values: dict[str, str]) -> None:
    """Start the cluster and do what the postgres image does with POSTGRES_USER/_DB, then the
    compose file's init SQL (the MLflow database)."""
    postgres.start()
    services = compose["services"]
    pg_env = service_env(services["postgres"], addr, values)
    user, password, database = pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"]
    postgres.psql(f"CREATE USER {user} WITH PASSWORD '{password}'")
    postgres.psql(f"CREATE DATABASE {database} OWNER {user}")
    for config in services["postgres"].get("configs", []):
        sql = addr.translate(interpolate(compose["configs"][config["source"]]["content"], values))
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            postgres.psql(statement)


def compose_airflow_env(compose: dict[str, Any], addr: Addresses, values: dict[str, str],
                        **overrides: str) -> dict[str, str]:
    """The Airflow services' compose environment on a clean base, plus what differs on one machine
    (every server on 127.0.0.1 and a free port), plus `overrides`."""
    return {
        **base_env(),
        **service_env(compose["services"]["airflow-scheduler"], addr, values),
        # the image's .pth: esteira and ml_jobs import from the repo (this checkout, not another one
        # an editable install of the interpreter may point at)
        "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}",
        "AIRFLOW_HOME": str(addr.airflow_home),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(addr.api_port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(addr.scheduler_health_port),
        **overrides,
    }


def run_airflow_init(compose: dict[str, Any], addr: Addresses, values: dict[str, str],
                     airflow_env: Mapping[str, str]) -> dict[str, str]:
    """airflow-init's own script (JWT check, `airflow db migrate`, the admin's password file);
    returns its environment (it holds the admin's user name and password)."""
    init = compose["services"]["airflow-init"]
    init_env = {**airflow_env, **service_env(init, addr, values)}
    (addr.airflow_home / "auth").mkdir(parents=True, exist_ok=True)
    script = addr.translate(interpolate(init["command"][-1], values))
    run(["bash", "-c", script], env=init_env, timeout=300)
    return init_env


def airflow_argv(component: str, addr: Addresses) -> list[str]:
    """The command of an Airflow service (its compose `command`), serving on 127.0.0.1 only."""
    argv = [str(VENV_BIN / "airflow"), component]
    if component == "api-server":
        argv += ["--host", "127.0.0.1", "--port", str(addr.api_port)]
    elif component in ("scheduler", "triggerer"):
        # their log server binds every interface; the api-server reads the log files here
        argv.append("--skip-serve-logs")
    return argv
