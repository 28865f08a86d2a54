"""Airflow DAG file: one DAG per project under ESTEIRA_PROJECTS_DIR (default: the repo's projects/).

Airflow's safe mode only parses files that mention both "airflow" and "dag"; this one does.
"""

from esteira.airflow.factory import build_all

globals().update(build_all())
