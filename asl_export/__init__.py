"""`python -m asl_export`: a project's Step Functions state machine and EventBridge schedules.

It imports no Airflow: CI jobs run it without Airflow installed.
"""
