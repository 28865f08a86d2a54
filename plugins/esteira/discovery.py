"""Find every project under the projects folder and load each on its own.

One broken project yields a LoadFailure beside the others' Projects; nothing here raises
for a user's mistake, so one bad config can never hide the good ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.errors import ConfigError, Problem, unexpected_error

if TYPE_CHECKING:
    from esteira.config import Project

# esteira.config's CONFIG_FILE; not imported from there, so that listing the projects (what every
# DAG-file parse does before the compile cache answers) does not import the config model
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class LoadFailure:
    folder: str
    error: ConfigError


def project_files(projects_dir: Path) -> list[Path]:
    """config.yaml of every project folder, sorted (folders starting with . or _ are skipped)."""
    if not projects_dir.is_dir():
        return []
    return sorted(
        p / CONFIG_FILE for p in projects_dir.iterdir()
        if p.is_dir() and not p.name.startswith((".", "_")) and (p / CONFIG_FILE).is_file()
    )


def discover(projects_dir: Path) -> list[Project | LoadFailure]:
    """Every project, loaded or with the error that stopped it, in folder order."""
    if not projects_dir.is_dir():
        return [LoadFailure(projects_dir.name, ConfigError(projects_dir, [
            Problem("projects folder not found; set ESTEIRA_PROJECTS_DIR to the folder that "
                    "holds <project>/config.yaml")]))]
    from esteira.config import load_project  # the config model: only when a project is loaded

    out: list[Project | LoadFailure] = []
    for file in project_files(projects_dir):
        try:
            out.append(load_project(file))
        except ConfigError as exc:
            out.append(LoadFailure(file.parent.name, exc))
        except Exception as exc:  # whatever breaks one project must not hide the others
            out.append(LoadFailure(file.parent.name, unexpected_error(file, exc)))
    return out
