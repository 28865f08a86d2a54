"""`python -m asl_export`: a thin alias of `esteira export`, with the same flags, files and exit codes."""

from __future__ import annotations

from esteira.export_command import main as _main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    return _main(argv, prog="python -m asl_export")
