"""Airflow DAG file written by esteira (`esteira dag-files`): the DAGs of the projects under
ESTEIRA_PROJECTS_DIR that fall to this file. Every esteira_dags*.py beside it is identical;
together they build every project once (esteira.dag_files).
"""

# Airflow's DAG processor imports the `airflow.*` modules a DAG file names once, before it starts
# the child that parses the file ([dag_processor] parsing_pre_import_modules): naming the provider
# modules esteira builds with saves every parse their import (~0.4 s of CPU; benchmarks/dag_parse.py).
import airflow.providers.amazon.aws.notifications.sns
import airflow.providers.amazon.aws.operators.ecs  # noqa: F401

from esteira.airflow.factory import build_dag_file

globals().update(build_dag_file(__file__))
