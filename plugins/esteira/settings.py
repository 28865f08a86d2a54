"""The few environment variables esteira reads, in one place, each checked with a clear error."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout, when esteira runs from one (plugins/esteira)
# The MWAA bundle (python -m esteira mwaa-bundle) ships the projects in this folder beside its DAG
# files (dags/esteira_projects): MWAA syncs only dags/, and esteira itself is installed from a wheel
# (site-packages), so the DAG file's folder is where they are found.
BUNDLED_PROJECTS_FOLDER = "esteira_projects"
BACKENDS = ("local", "ecs")
ENV_NAMES: tuple[str, ...] = ("dev", "prd")  # the AWS environments environments.yaml describes
LOCAL_MLFLOW_VAR = "ESTEIRA_LOCAL_MLFLOW_TRACKING_URI"
CACHE_VAR = "ESTEIRA_CACHE_DIR"
CACHE_OFF = ("off", "none", "0")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:\S+$")


def default_projects_dir(dags_folder: Path | None = None) -> Path:
    """The projects folder when ESTEIRA_PROJECTS_DIR is not set.

    The esteira_projects/ beside the DAG file that asks (`dags_folder`: the MWAA bundle's), else
    the checkout's projects/. A pip-installed esteira has no checkout around it (REPO_ROOT is then a
    folder of the Python install), so it takes the projects/ of the folder it runs in, as `esteira
    validate` does from a repo root in a pre-commit hook.
    """
    if dags_folder is not None and (dags_folder / BUNDLED_PROJECTS_FOLDER).is_dir():
        return dags_folder / BUNDLED_PROJECTS_FOLDER
    checkout = REPO_ROOT / "projects"
    return checkout if checkout.is_dir() else Path.cwd() / "projects"


def cache_dir(environ: dict[str, str]) -> Path | None:
    """Where the DAG factory keeps compiled projects (esteira.compile_cache); None: no cache.

    ESTEIRA_CACHE_DIR, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache) /esteira.
    """
    chosen = environ.get(CACHE_VAR)
    if chosen is not None and chosen.strip().lower() in CACHE_OFF:
        return None
    if chosen:
        return Path(chosen)
    xdg = environ.get("XDG_CACHE_HOME")
    home = environ.get("HOME")
    base = Path(xdg) if xdg else (Path(home) if home else Path.home()) / ".cache"
    return base / "esteira" / "compiled"


@dataclass(frozen=True)
class Settings:
    projects_dir: Path
    environments_file: Path
    backend: str  # "local": steps are processes on this machine; "ecs": EcsRunTaskOperator
    env: str  # the AWS environment the ecs backend targets (dev, prd)
    # the local backend's MLflow: by default the sqlite file under environments.yaml's local.home;
    # a stack with an MLflow server (docker-compose.yaml) points the steps at it instead
    local_mlflow_tracking_uri: str | None = None
    cache_dir: Path | None = None  # compiled projects (ESTEIRA_CACHE_DIR); None: compile on every parse

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None, dags_folder: Path | None = None) -> Settings:
        """The settings `environ` (default os.environ) gives; `dags_folder`: the folder of the DAG
        file asking, whose esteira_projects/ is the default projects folder when it has one."""
        environ = dict(os.environ if environ is None else environ)
        projects = Path(environ.get("ESTEIRA_PROJECTS_DIR") or default_projects_dir(dags_folder))
        envfile = Path(environ.get("ESTEIRA_ENVIRONMENTS_FILE") or projects / "environments.yaml")
        # MWAA sets AIRFLOW_ENV_NAME; there steps run on ECS unless told otherwise.
        default_backend = "ecs" if environ.get("AIRFLOW_ENV_NAME") else "local"
        backend = environ.get("ESTEIRA_BACKEND") or default_backend
        if backend not in BACKENDS:
            raise ValueError(f"ESTEIRA_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
        env = environ.get("ESTEIRA_ENV") or "dev"
        if env not in ENV_NAMES:
            raise ValueError(f"ESTEIRA_ENV={env!r} is not one of {', '.join(ENV_NAMES)}")
        mlflow_uri = environ.get(LOCAL_MLFLOW_VAR) or None
        if mlflow_uri is not None and not _URI.match(mlflow_uri):
            raise ValueError(f"{LOCAL_MLFLOW_VAR}={mlflow_uri!r} is not an MLflow tracking URI "
                             "(e.g. http://mlflow:5000 or sqlite:////abs/path/mlflow.db)")
        return cls(projects, envfile, backend, env, mlflow_uri, cache_dir(environ))
