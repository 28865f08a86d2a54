"""Test session set-up (Airflow 3): a private Airflow home and the project-folder fixtures.

Both live in session_fixtures, which tests_airflow2/ shares; it is imported first, before
anything imports Airflow.
"""

from __future__ import annotations

from session_fixtures import DAGS, PROJECTS, REPO, airflow_db, projects_dir, write_project

__all__ = ["DAGS", "PROJECTS", "REPO", "airflow_db", "projects_dir", "write_project"]
