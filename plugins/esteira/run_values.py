"""The run's identity, which only the orchestrator knows when a run starts.

Its own tiny module so that what the DAG processor imports on every parse (the Airflow side's
templates and notifications) does not pull in the config model.
"""

from __future__ import annotations

import enum


class RunValue(enum.Enum):
    """Values known only when a run starts."""

    RUN_DATE = "RUN_DATE"  # the scheduled/logical instant, ISO 8601 UTC, e.g. 2026-11-24T03:00:00Z
    RUN_ID = "RUN_ID"  # the orchestrator's id of this run
    # a run an S3 object started (esteira.s3_trigger): its bucket and key; empty for any other run
    TRIGGER_BUCKET = "TRIGGER_BUCKET"
    TRIGGER_KEY = "TRIGGER_KEY"
