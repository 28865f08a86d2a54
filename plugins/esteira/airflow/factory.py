"""Every project's DAG, built for the DAG processor: a broken project never hides the others.

A project whose config (or environments.yaml) is broken becomes a paused placeholder DAG
under the folder's name: its task fails with the error, its docs show the error, and it is
tagged `esteira:config-error`, so the mistake is visible in the Airflow UI instead of lost
in the processor's log. "Broken" means anything that goes wrong while loading or building
that one project, not only the mistakes esteira's checks know: an exception that escaped
here would abort the DAG file and Airflow would drop every esteira DAG at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime
from typing import Any

from esteira.airflow.compat import DAG, BaseOperator, Context
from esteira.airflow.dag_builder import build_dag
from esteira.config import Project
from esteira.discovery import LoadFailure, discover
from esteira.environments import load_environments
from esteira.errors import ConfigError, unexpected_error
from esteira.plan import Target, build_plan
from esteira.settings import Settings

log = logging.getLogger("esteira")
ERROR_TAG = "esteira:config-error"


class ConfigErrorOperator(BaseOperator):
    """Fails with the config error, so a run of a broken project says what to fix."""

    ui_color = "#f8d7da"

    def __init__(self, *, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def execute(self, context: Context) -> None:
        raise ValueError(f"this project's config is invalid; fix it and the DAG returns:\n{self.error}")


def error_dag_id(folder: str) -> str:
    """The folder's name when it is a valid DAG id; else a sanitised id made unique by a hash of
    the name, so two broken folders ("a b", "a.b"...) never share one DAG and hide each other."""
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,250}", folder):
        return folder
    digest = hashlib.sha1(folder.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"esteira_config_error__{re.sub(r'[^A-Za-z0-9_.-]', '_', folder)[:200]}__{digest}"


def error_dag(folder: str, error: Exception, dag_id: str | None = None) -> DAG:
    text = str(error)
    dag = DAG(
        dag_id=dag_id or error_dag_id(folder),
        description="esteira: config error - see the DAG docs",
        doc_md=f"## This project's config is invalid\n\n```\n{text}\n```\n",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        tags=["esteira", ERROR_TAG],
        is_paused_upon_creation=True,
    )
    ConfigErrorOperator(task_id="config_error", error=text, dag=dag)
    return dag


def build_all(settings: Settings | None = None) -> dict[str, DAG]:
    """{dag_id: DAG} for every project folder, good or broken; never raises for one project."""
    try:
        settings = settings or Settings.from_environ()
    except ValueError as exc:  # a bad ESTEIRA_* variable breaks every project alike
        log.error("esteira: %s", exc)
        return {"esteira_settings_error": error_dag("esteira_settings_error", exc)}
    loaded = discover(settings.projects_dir)
    env_error: ConfigError | None = None
    target: Target | None = None
    try:
        environments = load_environments(settings.environments_file)
        target = (Target.local(environments, settings.local_mlflow_tracking_uri) if settings.backend == "local"
                  else Target.aws_env(environments, settings.env))
    except ConfigError as exc:
        env_error = exc
    except Exception as exc:  # see the module docstring
        env_error = unexpected_error(settings.environments_file, exc)
    dags: dict[str, DAG] = {}
    item: Project | LoadFailure | None
    for item in loaded:
        if isinstance(item, Project):
            item = _build(item, target, env_error, dags)
            if item is None:
                continue
        log.error("esteira: project %s not loaded:\n%s", item.folder, item.error)
        dag_id = error_dag_id(item.folder)
        if dag_id in dags:  # only a folder named like another's sanitised id gets here
            dag_id = f"{dag_id}__{len(dags)}"
        dags[dag_id] = error_dag(item.folder, item.error, dag_id)
    return dags


def _build(project: Project, target: Target | None, env_error: ConfigError | None,
           dags: dict[str, DAG]) -> LoadFailure | None:
    """Add the project's DAG to `dags`, or say why it cannot be built."""
    if target is None:
        assert env_error is not None
        return LoadFailure(project.directory.name, env_error)
    try:
        dag = build_dag(build_plan(project, target))
    except ConfigError as exc:
        return LoadFailure(project.directory.name, exc)
    except Exception as exc:  # Airflow's own refusals, or anything else: see above
        return LoadFailure(project.directory.name, unexpected_error(project.source, exc))
    dags[dag.dag_id] = dag
    return None
