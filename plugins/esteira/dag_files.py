"""The DAG folder's esteira files: projects spread over several small DAG files.

Airflow parses each DAG file in its own process, and kills a parse that outlives
`dagbag_import_timeout` (30 s by default), dropping every DAG the file held. So esteira's DAGs are
spread over `esteira_dags.py`, `esteira_dags_001.py`, ... (`esteira dag-files` writes them): every
file is identical, and each builds the projects whose folder name hashes (crc32, stable across
runs and machines) to its position among the esteira DAG files beside it. The files present
always cover every project exactly once, however many there are; `PROJECTS_PER_FILE` is the
documented bound `esteira dag-files` sizes them for, and the processor parses them in parallel.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from pathlib import Path

PROJECTS_PER_FILE = 200  # ~0.6 s of parse per file on the benchmark machine (benchmarks/dag_parse.py)
DAG_FILE = "esteira_dags.py"
_DAG_FILE_RE = re.compile(r"esteira_dags(_\d+)?\.py")

# Every esteira DAG file is exactly this text. Airflow's safe mode only parses files that mention
# both "airflow" and "dag"; this one does.
DAG_FILE_TEXT = '''\
"""Airflow DAG file written by esteira (`esteira dag-files`): the DAGs of the projects under
ESTEIRA_PROJECTS_DIR that fall to this file. Every esteira_dags*.py beside it is identical;
together they build every project once (esteira.dag_files).
"""

# Airflow's DAG processor imports the `airflow.*` modules a DAG file names once, before it starts
# the child that parses the file ([dag_processor] parsing_pre_import_modules): naming the provider
# modules esteira builds with saves every parse their import (~0.4 s of CPU; benchmarks/dag_parse.py).
import airflow.providers.amazon.aws.notifications.sns
import airflow.providers.amazon.aws.operators.ecs  # noqa: F401

from esteira.airflow.factory import build_dag_file

globals().update(build_dag_file(__file__))
'''


def is_dag_file(name: str) -> bool:
    return _DAG_FILE_RE.fullmatch(name) is not None


def present(dags_folder: Path) -> list[str]:
    """The esteira DAG files in the folder, sorted: regular files only (one directory read)."""
    try:
        with os.scandir(dags_folder) as entries:
            return sorted(e.name for e in entries if is_dag_file(e.name) and e.is_file())
    except OSError:
        return []


def shard_of(folder: str, count: int) -> int:
    """The position (0-based) of the DAG file that builds project folder `folder` among `count`."""
    return zlib.crc32(folder.encode("utf-8", "surrogatepass")) % count


def position(dag_file: str | Path) -> tuple[int, int]:
    """(this file's position, how many esteira DAG files there are) in the file's folder.

    A DAG file under another name (a user's own copy) builds every project: (0, 1).
    """
    path = Path(dag_file)
    if not is_dag_file(path.name):
        return 0, 1
    names = present(path.parent)
    return (names.index(path.name), len(names)) if path.name in names else (0, 1)


def file_names(count: int) -> list[str]:
    """The names of `count` DAG files, in the order that gives each its position."""
    return [DAG_FILE, *(f"esteira_dags_{i:03d}.py" for i in range(1, count))]


def files_needed(projects: int, per_file: int = PROJECTS_PER_FILE) -> int:
    return max(1, math.ceil(projects / per_file))


def differences(dags_folder: Path, count: int) -> list[str]:
    """What `sync` would change, one line each; empty when the folder is as it should be."""
    wanted = file_names(count)
    files = present(dags_folder)
    out = [f"{name} is missing" for name in wanted if name not in files]
    out += [f"{name} is not esteira's DAG file text" for name in wanted
            if name in files and (dags_folder / name).read_bytes() != DAG_FILE_TEXT.encode()]
    out += [f"{name} is one file too many" for name in files if name not in wanted]
    return out


def sync(dags_folder: Path, count: int) -> tuple[list[Path], list[Path]]:
    """Make `dags_folder` hold exactly `count` esteira DAG files: (written, removed); OSError when it
    cannot (the folder is a file, read-only, or a DAG file's name is taken by a folder)."""
    dags_folder.mkdir(parents=True, exist_ok=True)
    wanted = file_names(count)
    written: list[Path] = []
    for name in wanted:
        path = dags_folder / name
        if not path.is_file() or path.read_bytes() != DAG_FILE_TEXT.encode():
            path.write_text(DAG_FILE_TEXT, encoding="utf-8")
            written.append(path)
    removed = [dags_folder / name for name in present(dags_folder) if name not in wanted]
    for path in removed:
        path.unlink()
    return written, removed
