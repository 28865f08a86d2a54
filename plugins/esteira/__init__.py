"""esteira: one config.yaml per ML project, rendered as an Airflow DAG and a Step Functions machine.

This package (the core) never imports Airflow; only `esteira.airflow` does.
"""

__version__ = "0.1.0"
