"""The only package of esteira that imports Airflow."""
