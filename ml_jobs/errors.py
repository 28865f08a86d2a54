"""Expected failures: each ends a step with its own exit code and one line on stderr.

Only these are reported without a traceback; anything else is a bug and shows one.
"""

from __future__ import annotations


class JobError(Exception):
    """An expected failure: reported as one line, exit code `exit_code`, no traceback."""

    exit_code = 1


class UsageError(JobError):
    """The environment or the command line is wrong (a missing or malformed variable)."""

    exit_code = 2


class DataError(JobError):
    """An input is missing, unreadable or does not have the shape the step needs."""

    exit_code = 3


class MlflowUnavailable(JobError):
    """MLflow cannot be reached or refused a request."""

    exit_code = 4
