"""The code inside a project's container image: one CLI per pipeline step.

`python -m ml_jobs.<project>.<step>` reads the run's identity and endpoints from the
environment esteira injects (ENV, RUN_DATE, RUN_ID, DATA_ROOT, MLFLOW_*), reads its inputs
from and writes its outputs to `DATA_ROOT/<project>/<run date>/`, and reports to MLflow.
Nothing here imports Airflow or esteira: the same image runs under Airflow and Step Functions.
"""
