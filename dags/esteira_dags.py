"""Airflow DAG file: one DAG per project under ESTEIRA_PROJECTS_DIR (default: the repo's projects/).

Airflow's safe mode only parses files that mention both "airflow" and "dag"; this one does.
"""

# Airflow's DAG processor imports the `airflow.*` modules a DAG file names once, before it starts
# the child that parses the file ([dag_processor] parsing_pre_import_modules): naming the provider
# modules esteira builds with saves every parse their import (~0.4 s of CPU; benchmarks/dag_parse.py).
import airflow.providers.amazon.aws.notifications.sns
import airflow.providers.amazon.aws.operators.ecs  # noqa: F401

from esteira.airflow.factory import build_all

globals().update(build_all())
