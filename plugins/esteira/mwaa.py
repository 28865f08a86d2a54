"""The bundle Amazon MWAA deploys from its S3 bucket: dags/, plugins.zip and requirements.txt.

MWAA syncs dags/ to /usr/local/airflow/dags and unpacks plugins.zip into /usr/local/airflow/plugins
(which Airflow puts on sys.path). So the esteira package goes into plugins.zip, and the projects
(configs, environments.yaml, any files beside them) into dags/esteira_projects/, where settings.py looks
first: the package's grandparent is /usr/local/airflow there. A .airflowignore keeps Airflow's DAG
processor out of the projects, as plugins/.airflowignore keeps its plugin loader out of the package.

Everything is rendered in memory before anything is written, and rendered the same way every
time (sorted entries, fixed zip timestamps and modes, no __pycache__), so a re-run is byte-identical
and a CI job can compare bundles or skip an upload that changes nothing. No Airflow import here.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

from esteira.settings import BUNDLED_PROJECTS, REPO_ROOT

DEFAULT_AIRFLOW_VERSION = "2.11.0"  # the newest Airflow 2 that MWAA runs; tests_airflow2/ covers it
DEFAULT_PYTHON_VERSION = "3.11"  # MWAA's Python for Airflow 2.10 and 2.11
CONSTRAINTS_URL = "https://raw.githubusercontent.com/apache/airflow/constraints-{airflow}/constraints-{python}.txt"

PACKAGE_DIR = Path(__file__).resolve().parent
DAG_FILE = REPO_ROOT / "dags" / "esteira_dags.py"
PROJECTS_FOLDER = BUNDLED_PROJECTS.name  # dags/<this>/ on MWAA: settings.py finds it there

DAGS, PLUGINS_ZIP, REQUIREMENTS = "dags", "plugins.zip", "requirements.txt"
BUNDLE_ENTRIES = (DAGS, PLUGINS_ZIP, REQUIREMENTS)

# What esteira imports at run time besides Airflow itself (never list apache-airflow: MWAA owns it).
# MWAA installs the amazon provider itself, and an Airflow 2.11 install has the others only as other
# packages' dependencies (croniter: Airflow; pydantic: the http provider; email-validator:
# Flask-AppBuilder; PyYAML: connexion). Listing them keeps esteira working when that changes (in
# Airflow 3, Flask-AppBuilder is an optional provider) and costs nothing: the constraints file pins
# each to the version already installed.
RUNTIME_REQUIREMENTS = (
    ("apache-airflow-providers-amazon", "EcsRunTaskOperator, SnsNotifier"),
    ("croniter", "the Unix cron contract and its EventBridge translation"),
    ("email-validator", "pydantic's EmailStr (owners, notifications)"),
    ("pydantic", "the config model"),
    ("pyyaml", "reading config.yaml and environments.yaml"),
)

# Fixed metadata for every zip entry: the earliest date a zip can hold, a plain file's mode.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o100644 << 16
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")

PLUGINS_AIRFLOWIGNORE = """\
# esteira is a library on Airflow's plugins path, not an Airflow plugin: Airflow's plugin
# loader must not import its modules one by one (under wrong names, and at every start).
esteira/
"""
DAGS_AIRFLOWIGNORE = f"""\
# Written by `python -m esteira mwaa-bundle`. {PROJECTS_FOLDER}/ holds what esteira_dags.py reads
# (project configs, environments.yaml, files beside them): no DAG files. One pattern, valid in both of
# Airflow's ignore syntaxes: regexp (Airflow 2's default) and glob (Airflow 3's).
{PROJECTS_FOLDER}
"""


class BundleError(ValueError):
    """Bad input for the bundle (missing folder, bad version, unusable output folder): exit 2."""


def constraints_url(airflow_version: str, python_version: str) -> str:
    """Airflow's constraints file for a release, in the form MWAA documents."""
    return CONSTRAINTS_URL.format(airflow=airflow_version, python=python_version)


def check_versions(airflow_version: str, python_version: str) -> None:
    """Refuse versions that cannot name a constraints file, or an Airflow esteira does not support."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", airflow_version)
    if not match:
        raise BundleError(f"--airflow-version {airflow_version!r} is not a release like {DEFAULT_AIRFLOW_VERSION} "
                          "(MWAA environments run an exact Airflow release)")
    if tuple(int(part) for part in match.groups()[:2]) < (2, 10):
        raise BundleError(f"--airflow-version {airflow_version}: esteira's DAGs need Airflow 2.10 or later "
                          "(MWAA runs 2.10, 2.11 and 3.x)")
    if not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise BundleError(f"--python-version {python_version!r} is not a Python version like {DEFAULT_PYTHON_VERSION}")


def requirements_txt(airflow_version: str, python_version: str) -> str:
    """requirements.txt for MWAA: the constraints line, then esteira's run-time packages.

    The packages carry no version: the constraints file pins each one, and a pin of ours that
    differed from it would make pip refuse the whole file (MWAA then rolls the update back).
    """
    width = max(len(name) for name, _ in RUNTIME_REQUIREMENTS)
    lines = [
        f"# Written by `python -m esteira mwaa-bundle` for Amazon MWAA with Apache Airflow {airflow_version}"
        f" (Python {python_version}).",
        "# Versions come from Airflow's constraints file below, which pins each package to the version",
        "# MWAA's image already has; a different == pin here would make pip refuse the whole file.",
        f'--constraint "{constraints_url(airflow_version, python_version)}"',
        *(f"{name:<{width}}  # {why}" for name, why in RUNTIME_REQUIREMENTS),
    ]
    return "\n".join(lines) + "\n"


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """(posix path relative to root, file) for every file to ship, sorted; no caches or dotfiles."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _SKIPPED_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIPPED_SUFFIXES):
            yield rel.as_posix(), path


def plugins_zip(package_dir: Path = PACKAGE_DIR) -> bytes:
    """plugins.zip: the esteira package at the zip root, plus the plugin loader's .airflowignore."""
    entries = {".airflowignore": PLUGINS_AIRFLOWIGNORE.encode()}
    entries |= {f"esteira/{rel}": path.read_bytes() for rel, path in _files(package_dir)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix: unzip applies the mode below
            info.external_attr = _ZIP_MODE
            archive.writestr(info, entries[name], compresslevel=9)
    return buffer.getvalue()


def render_bundle(projects_dir: Path, *, airflow_version: str = DEFAULT_AIRFLOW_VERSION,
                  python_version: str = DEFAULT_PYTHON_VERSION, package_dir: Path = PACKAGE_DIR,
                  dag_file: Path = DAG_FILE) -> dict[str, bytes]:
    """{path in the bundle: bytes} for every file of the bundle; raises BundleError on bad input.

    The projects are copied as they are: check them first (the CLI runs `validate`'s checks).
    """
    check_versions(airflow_version, python_version)
    if not (projects_dir / "environments.yaml").is_file():
        raise BundleError(f"{projects_dir}: no environments.yaml here; --projects-dir must be the folder "
                          "that holds environments.yaml and the <project>/config.yaml folders")
    if not dag_file.is_file():
        raise BundleError(f"{dag_file}: esteira's DAG file is missing (run from a checkout of the repo)")
    if not (package_dir / "__init__.py").is_file():
        raise BundleError(f"{package_dir}: not the esteira package")
    files = {
        f"{DAGS}/{dag_file.name}": dag_file.read_bytes(),
        f"{DAGS}/.airflowignore": DAGS_AIRFLOWIGNORE.encode(),
        PLUGINS_ZIP: plugins_zip(package_dir),
        REQUIREMENTS: requirements_txt(airflow_version, python_version).encode(),
    }
    files |= {f"{DAGS}/{PROJECTS_FOLDER}/{rel}": path.read_bytes() for rel, path in _files(projects_dir)}
    return dict(sorted(files.items()))


def write_bundle(out: Path, files: dict[str, bytes]) -> None:
    """Replace the bundle in `out` with `files`; refuses a folder holding anything else."""
    if out.exists() and not out.is_dir():
        raise BundleError(f"--out {out}: exists and is not a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in BUNDLE_ENTRIES)
        if foreign:
            raise BundleError(f"--out {out}: holds {', '.join(foreign)}, which the bundle would not replace; "
                              "choose an empty folder or a previous bundle's")
        for name in BUNDLE_ENTRIES:  # a previous bundle: removed whole, so no stale file survives
            old = out / name
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                old.unlink()
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def build_bundle(out: Path, projects_dir: Path, *, airflow_version: str = DEFAULT_AIRFLOW_VERSION,
                 python_version: str = DEFAULT_PYTHON_VERSION) -> dict[str, bytes]:
    """Render the bundle and write it to `out`; returns what was written (path in bundle: bytes)."""
    resolved = out.resolve()
    for source in (projects_dir.resolve(), PACKAGE_DIR):
        if resolved == source or source in resolved.parents:
            raise BundleError(f"--out {out}: is inside {source}, which the bundle copies; choose a folder outside it")
    files = render_bundle(projects_dir, airflow_version=airflow_version, python_version=python_version)
    write_bundle(out, files)
    return files
