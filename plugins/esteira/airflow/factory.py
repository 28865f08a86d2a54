"""Every project's DAG, built for the DAG processor: a broken project never hides the others.

A project whose config (or environments.yaml) is broken becomes a paused placeholder DAG
under the folder's name: its task fails with the error, its docs show the error, and it is
tagged `esteira:config-error`, so the mistake is visible in the Airflow UI instead of lost
in the processor's log. "Broken" means anything that goes wrong while loading or building
that one project, not only the mistakes esteira's checks know: an exception that escaped
here would abort the DAG file and Airflow would drop every esteira DAG at once.

Each esteira DAG file builds its share of the projects (esteira.dag_files), each project from
the compile cache when its inputs did not change (esteira.airflow.project_specs).
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from esteira import dag_files
from esteira.airflow.compat import DAG, BaseOperator, Context
from esteira.airflow.dag_builder import build_dags
from esteira.airflow.project_specs import Broken, ProjectSpecs
from esteira.discovery import project_files, project_folders
from esteira.errors import ConfigError, Problem, unexpected_error
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


def error_dag(folder: str, error: Exception | str, dag_id: str | None = None) -> DAG:
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


def build_dag_file(dag_file: str | Path) -> dict[str, DAG]:
    """{dag_id: DAG} of the projects that fall to this esteira DAG file (esteira.dag_files); without
    ESTEIRA_PROJECTS_DIR, the projects of an esteira_projects/ beside the file (the MWAA bundle's)."""
    return build_all(shard=dag_files.position(dag_file), dags_folder=Path(dag_file).parent)


def build_all(settings: Settings | None = None, shard: tuple[int, int] = (0, 1),
              dags_folder: Path | None = None) -> dict[str, DAG]:
    """{dag_id: DAG} for every project folder (of `shard`: position, count), good or broken;
    never raises for one project. `dags_folder`: the DAG file's folder, when settings is None."""
    try:
        settings = settings or Settings.from_environ(dags_folder=dags_folder)
    except ValueError as exc:  # a bad ESTEIRA_* variable breaks every project alike
        log.error("esteira: %s", exc)
        return {"esteira_settings_error": error_dag("esteira_settings_error", exc)} if shard[0] == 0 else {}
    projects_dir = settings.projects_dir
    if not projects_dir.is_dir():
        error = ConfigError(projects_dir, [Problem(
            "projects folder not found; set ESTEIRA_PROJECTS_DIR to the folder that holds <project>/config.yaml")])
        log.error("esteira: %s", error)
        return {error_dag_id(projects_dir.name): error_dag(projects_dir.name, error)} if shard[0] == 0 else {}
    index, count = shard
    folders = project_folders(projects_dir)
    if len(folders) > count * dag_files.PROJECTS_PER_FILE and index == 0:
        log.warning("esteira: %d projects over %d DAG file(s), more than %d a file: run `esteira dag-files "
                    "--dags-folder DAGS_FOLDER` so that no file's parse comes near Airflow's "
                    "dagbag_import_timeout", len(folders), count, dag_files.PROJECTS_PER_FILE)
    files = project_files(projects_dir, [name for name in folders
                                         if count == 1 or dag_files.shard_of(name, count) == index])
    specs = ProjectSpecs(settings)
    dags: dict[str, DAG] = {}
    for file in files:
        built = _dag(specs, file)
        if not isinstance(built, Broken):
            dags.update((dag.dag_id, dag) for dag in built)
            continue
        spec = built
        log.error("esteira: project %s not loaded:\n%s", spec.folder, spec.error)
        dag_id = error_dag_id(spec.folder)
        if dag_id in dags:  # only a folder named like another's sanitised id gets here
            dag_id = f"{dag_id}__{len(dags)}"
        dags[dag_id] = error_dag(spec.folder, spec.error, dag_id)
    return dags


def _dag(specs: ProjectSpecs, file: Path) -> list[DAG] | Broken:
    """The project's DAGs (its own, and its S3 trigger's dispatcher), or why there are none; never
    raises (see the module docstring)."""
    try:
        spec = specs.spec(file)
        if isinstance(spec, Broken):
            return spec
        try:
            return build_dags(spec)
        except Exception:  # perhaps a damaged cache entry: compile afresh, once; a real failure recurs
            spec = specs.spec(file, cached=False)
            return spec if isinstance(spec, Broken) else build_dags(spec)
    except Exception as exc:  # Airflow's own refusals, or anything else
        return Broken(file.parent.name, str(unexpected_error(file, exc)))
