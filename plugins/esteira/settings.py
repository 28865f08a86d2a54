"""The few environment variables esteira reads, in one place, each checked with a clear error."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
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
        projects = Path(environ.get("ESTEIRA_PROJECTS_DIR") or REPO_ROOT / "projects")
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
