"""Find every project under the projects folder and load each on its own.

One broken project yields a LoadFailure beside the others' Projects; nothing here raises
for a user's mistake, so one bad config can never hide the good ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


def project_folders(projects_dir: Path) -> list[str]:
    """The names of the folders that may be projects, sorted (those starting with . or _ are not).

    One directory read, no stat per folder: each DAG file lists the folders of thousands of
    projects on every parse, and checks for a config.yaml only in its own (esteira.dag_files).
    """
    try:
        with os.scandir(projects_dir) as entries:
            return sorted(e.name for e in entries if not e.name.startswith((".", "_")) and e.is_dir())
    except OSError:
        return []


def project_files(projects_dir: Path, folders: list[str] | None = None) -> list[Path]:
    """config.yaml of every project folder (or of `folders` among them), sorted."""
    names = project_folders(projects_dir) if folders is None else folders
    return [projects_dir / name / CONFIG_FILE for name in names
            if os.path.isfile(os.path.join(projects_dir, name, CONFIG_FILE))]


def discover(projects_dir: Path, read: Callable[[Path], bytes] | None = None) -> list[Project | LoadFailure]:
    """Every project, loaded or with the error that stopped it, in folder order."""
    if not projects_dir.is_dir():
        return [LoadFailure(projects_dir.name, ConfigError(projects_dir, [
            Problem("projects folder not found; set ESTEIRA_PROJECTS_DIR to the folder that "
                    "holds <project>/config.yaml")]))]
    from esteira.config import load_project  # the config model: only when a project is loaded

    out: list[Project | LoadFailure] = []
    for file in project_files(projects_dir):
        try:
            out.append(load_project(file, read(file) if read else None))
        except ConfigError as exc:
            out.append(LoadFailure(file.parent.name, exc))
        except Exception as exc:  # whatever breaks one project must not hide the others
            out.append(LoadFailure(file.parent.name, unexpected_error(file, exc)))
    return out
