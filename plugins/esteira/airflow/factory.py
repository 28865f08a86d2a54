"""Every project's DAG, built for the DAG processor: a broken project never hides the others.

A project whose config (or environments.yaml) is broken becomes a paused placeholder DAG
under the folder's name: its task fails with the error, its docs show the error, and it is
tagged `esteira:config-error`, so the mistake is visible in the Airflow UI instead of lost
in the processor's log.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from esteira.airflow.compat import DAG, BaseOperator, Context
from esteira.airflow.dag_builder import build_dag
from esteira.config import Project
from esteira.discovery import LoadFailure, discover
from esteira.environments import load_environments
from esteira.errors import ConfigError
from esteira.runspec import Target, build_run_spec
from esteira.settings import Settings

log = logging.getLogger("esteira")
ERROR_TAG = "esteira:config-error"


class ConfigErrorOperator(BaseOperator):
    """Fails with the config error, so a run of a broken project says what to fix."""

    ui_color = "#f8d7da"

    def __init__(self, *, error: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.error = error

    def execute(self, context: Context) -> None:
        raise ValueError(f"this project's config is invalid; fix it and the DAG returns:\n{self.error}")


def error_dag(folder: str, error: ConfigError | ValueError) -> DAG:
    dag_id = folder if re.fullmatch(r"[A-Za-z0-9_.-]{1,250}", folder) else (
        "esteira_config_error__" + re.sub(r"[^A-Za-z0-9_.-]", "_", folder))[:250]
    text = str(error)
    dag = DAG(
        dag_id=dag_id,
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
    """{dag_id: DAG} for every project folder, good or broken."""
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
    dags: dict[str, DAG] = {}
    for item in loaded:
        if isinstance(item, Project) and target is not None:
            try:
                dag = build_dag(build_run_spec(item, target))
            except ConfigError as exc:
                item = LoadFailure(item.directory.name, exc)
            else:
                dags[dag.dag_id] = dag
                continue
        if isinstance(item, Project):
            assert env_error is not None
            item = LoadFailure(item.directory.name, env_error)
        log.error("esteira: project %s not loaded:\n%s", item.folder, item.error)
        dag = error_dag(item.folder, item.error)
        dags[dag.dag_id] = dag
    return dags
