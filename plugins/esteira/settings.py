"""The few environment variables esteira reads, in one place, each checked with a clear error."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# On MWAA, plugins.zip unpacks to <AIRFLOW_HOME>/plugins (so REPO_ROOT is <AIRFLOW_HOME>) and only
# dags/ is synced besides it: the MWAA bundle ships the projects there (python -m esteira mwaa-bundle).
BUNDLED_PROJECTS = REPO_ROOT / "dags" / "esteira_projects"
BACKENDS = ("local", "ecs")


@dataclass(frozen=True)
class Settings:
    projects_dir: Path
    environments_file: Path
    backend: str  # "local": steps are processes on this machine; "ecs": EcsRunTaskOperator
    env: str  # the AWS environment the ecs backend targets (dev, prd)

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        projects = Path(environ.get("ESTEIRA_PROJECTS_DIR")
                        or (BUNDLED_PROJECTS if BUNDLED_PROJECTS.is_dir() else REPO_ROOT / "projects"))
        envfile = Path(environ.get("ESTEIRA_ENVIRONMENTS_FILE") or projects / "environments.yaml")
        # MWAA sets AIRFLOW_ENV_NAME; there steps run on ECS unless told otherwise.
        default_backend = "ecs" if environ.get("AIRFLOW_ENV_NAME") else "local"
        backend = environ.get("ESTEIRA_BACKEND") or default_backend
        if backend not in BACKENDS:
            raise ValueError(f"ESTEIRA_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
        env = environ.get("ESTEIRA_ENV") or "dev"
        if env not in ("dev", "prd"):
            raise ValueError(f"ESTEIRA_ENV={env!r} is not one of dev, prd")
        return cls(projects, envfile, backend, env)
