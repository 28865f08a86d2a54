"""Errors a user can fix by editing their config: one type, rendered the same everywhere.

Every message names the file, the line when known, the field path and what would be valid,
so a user never has to read a traceback to find their mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file."""

    message: str
    path: tuple[str | int, ...] = ()
    line: int | None = None

    def location(self) -> str:
        return format_path(self.path) if self.path else "(top level)"


def format_path(path: tuple[str | int, ...]) -> str:
    """Render ('batch', 'pipeline', 'steps', 2, 'id') as batch.pipeline.steps[2].id."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class ConfigError(Exception):
    """A config file the user must fix; carries every problem found, not just the first."""

    file: Path | str
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.file}: {len(self.problems)} problem(s)"]
        for p in self.problems:
            where = f"{self.file}:{p.line}" if p.line else f"{self.file}"
            lines.append(f"  {where}: {p.location()}: {p.message}")
        return "\n".join(lines)


def unexpected_error(file: Path | str, exc: BaseException) -> ConfigError:
    """A failure no check of ours foresaw (a library's own ValueError, a RecursionError...), as the
    same ConfigError the user sees for every other mistake: the project is reported, never lost,
    and the others are unaffected."""
    detail = " ".join(str(exc).split())[:500] or "(no message)"
    return ConfigError(file, [Problem(
        f"esteira could not build this project: {type(exc).__name__}: {detail}. The config is the "
        "likely cause; if it looks valid, report this message to the esteira maintainers")])
