"""The bundle Amazon MWAA deploys from its S3 bucket: dags/, plugins.zip and requirements.txt.

MWAA syncs dags/ to /usr/local/airflow/dags, unpacks plugins.zip into /usr/local/airflow/plugins and
then pip-installs requirements.txt. esteira is installed the way MWAA's guide asks for custom code: a
wheel of it in plugins.zip, named in requirements.txt by its path there
(/usr/local/airflow/plugins/esteira-<version>-py3-none-any.whl), so pip installs it into
site-packages with the dependencies its metadata declares, under Airflow's constraints file. Beside
the wheel plugins.zip holds only what must be a plugin: esteira_plugin.py, which registers esteira's
timetable (Airflow finds timetables through plugins only). Airflow's plugin loader imports the .py
files of the plugins folder and nothing else, so plugins.zip needs no .airflowignore. The projects
(configs, environments.yaml, any files beside them) go into dags/esteira_projects/, where the DAG
files find them (settings.py: the esteira_projects/ beside the DAG file); a .airflowignore keeps
Airflow's DAG processor out of them.

The wheel is built from the checkout (pyproject.toml and the folders it names) with `pip wheel
--no-build-isolation --no-index`, offline, in a temporary copy, so nothing is left in the checkout,
once per process for given sources (the tests build many bundles). Its bytes are reproducible:
SOURCE_DATE_EPOCH fixes every entry's timestamp, the copied files have mode 0644 and the build
runs under umask 022 (setuptools records the modes of the files it writes), and pip and setuptools
read no user configuration.

Everything is rendered in memory before anything is written, and rendered the same way every
time (sorted entries, fixed zip timestamps and modes, no __pycache__), so a re-run is byte-identical
and a CI job can compare bundles or skip an upload that changes nothing. No Airflow import here.

The output folder is esteira's only by its manifest, <out>/.esteira-bundle.json: every file written,
with its sha256. esteira writes into an empty (or missing) folder or one holding a previous bundle,
and replaces or removes only files its manifest lists, only while unchanged; anything else there
is refused before a byte is written (it is someone's work: a team's own DAG file, notes, an edit).
Files are written to a temporary file beside them and renamed into place; a file whose bytes are
unchanged is left untouched (so `aws s3 sync` does not upload it again). While writing, the manifest
also accepts each file's previous content, so an interrupted run leaves a folder the next run owns.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from esteira import dag_files
from esteira.discovery import project_files
from esteira.settings import BUNDLED_PROJECTS_FOLDER

DEFAULT_AIRFLOW_VERSION = "2.11.0"  # the newest Airflow 2 that MWAA runs; tests_airflow2/ covers it
DEFAULT_PYTHON_VERSION = "3.11"  # MWAA's Python for Airflow 2.10 and 2.11
CONSTRAINTS_URL = "https://raw.githubusercontent.com/apache/airflow/constraints-{airflow}/constraints-{python}.txt"

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECTS_FOLDER = BUNDLED_PROJECTS_FOLDER  # dags/<this>/ on MWAA: the DAG files find it there
MWAA_PLUGINS_FOLDER = "/usr/local/airflow/plugins"  # where MWAA unpacks plugins.zip (the wheel's path)

DAGS, PLUGINS_ZIP, REQUIREMENTS = "dags", "plugins.zip", "requirements.txt"
MANIFEST = ".esteira-bundle.json"  # at <out>'s root, beside dags/: never uploaded
MANIFEST_FORMAT = 1
_TEMP_SUFFIX = ".esteira-tmp"
_NAMED = 5  # files a refusal names; the rest are counted

# What esteira needs at run time besides its wheel's own dependencies (pyproject.toml's
# `dependencies`, which pip installs with the wheel, under the constraints): the amazon provider,
# which only the `airflow` extra names, beside apache-airflow itself (never list apache-airflow:
# MWAA owns it). MWAA's image has the provider; listing it keeps the bundle honest about it.
RUNTIME_REQUIREMENTS = (
    ("apache-airflow-providers-amazon", "EcsRunTaskOperator, SnsNotifier"),
)

# Fixed metadata for every zip entry: the earliest date a zip can hold, a plain file's mode.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o100644 << 16
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")

# The checkout the wheel is built from, read only when a bundle is built: a pip-installed esteira has
# no pyproject.toml around it, and must still import this module (`esteira --help` does).
CHECKOUT = PACKAGE_DIR.parents[1]
# registers esteira's timetable with the scheduler (it lives next to the package, as in the repo)
PLUGIN_MODULE = PACKAGE_DIR.parent / "esteira_plugin.py"
# Files at the checkout's root that setuptools puts into a wheel's metadata without being told
# (its default license-files patterns); pyproject.toml and its readme are copied too.
_ROOT_FILE_PATTERNS = ("LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*")
# 1980-01-01T00:00:00Z, the earliest time a zip can hold: every entry of the wheel gets it
_SOURCE_DATE_EPOCH = "315532800"
_WHEELS: dict[str, tuple[str, bytes]] = {}  # sources' digest -> (file name, bytes): one build per process
DAGS_AIRFLOWIGNORE = f"""\
# Written by `python -m esteira mwaa-bundle`. {PROJECTS_FOLDER}/ holds what the esteira_dags*.py read
# (project configs, environments.yaml, files beside them): no DAG files. One pattern, valid in both of
# Airflow's ignore syntaxes: regexp (Airflow 2's default) and glob (Airflow 3's).
{PROJECTS_FOLDER}
"""


class BundleError(ValueError):
    """Bad input for the bundle (missing folder, bad version, an output folder esteira does not own): exit 2."""


class BundleIOError(Exception):
    """The bundle could not be read or written (--out is a file, permissions, disk full): exit 3."""


def _io_error(action: str, path: Path | str, exc: OSError) -> BundleIOError:
    return BundleIOError(f"could not {action} {path}: {exc.strerror or exc}")


def constraints_url(airflow_version: str, python_version: str) -> str:
    """Airflow's constraints file for a release, in the form MWAA documents."""
    return CONSTRAINTS_URL.format(airflow=airflow_version, python=python_version)


def check_versions(airflow_version: str, python_version: str) -> None:
    """Refuse versions that cannot name a constraints file, or an Airflow esteira does not support."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", airflow_version)
    if not match:
        raise BundleError(f"--airflow-version {airflow_version!r} is not a release like {DEFAULT_AIRFLOW_VERSION} "
                          "(MWAA environments run an exact Airflow release)")
    if tuple(int(part) for part in match.groups()[:2]) < (2, 11):
        # esteira's wheel needs pydantic>=2.11 and croniter>=6, newer than Airflow 2.10's constraints pin,
        # and 2.11 is the Airflow 2 that tests_airflow2/ runs
        raise BundleError(f"--airflow-version {airflow_version}: esteira needs Airflow 2.11 or later "
                          "(MWAA runs 2.11 and 3.x; upgrade a 2.10 environment to 2.11 first)")
    if not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise BundleError(f"--python-version {python_version!r} is not a Python version like {DEFAULT_PYTHON_VERSION}")


def wheel_path_on_mwaa(wheel_name: str) -> str:
    """The wheel's path on MWAA's containers, where plugins.zip is unpacked: requirements.txt's line."""
    return f"{MWAA_PLUGINS_FOLDER}/{wheel_name}"


def wheel_requires(wheel: bytes) -> list[str]:
    """The wheel's unconditional Requires-Dist (extras' requirements left out): what pip installs with it."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        fields = HeaderParser().parsestr(archive.read(name).decode())
    return [line for line in fields.get_all("Requires-Dist") or [] if not re.search(r"\bextra\s*==", line)]


def requirements_txt(airflow_version: str, python_version: str, wheel_name: str, wheel: bytes) -> str:
    """requirements.txt for MWAA: the constraints line, the amazon provider, then esteira's wheel by
    its path on MWAA.

    Nothing carries a version: the constraints file pins each package, and a pin of ours that
    differed from it would make pip refuse the whole file (MWAA then rolls the update back). The
    wheel's own dependencies are not repeated: pip installs what its metadata declares (one source,
    pyproject.toml), resolved under the same constraints, so its ranges must admit their pins.
    """
    width = max(len(name) for name, _ in RUNTIME_REQUIREMENTS)
    lines = [
        f"# Written by `python -m esteira mwaa-bundle` for Amazon MWAA with Apache Airflow {airflow_version}"
        f" (Python {python_version}).",
        "# Versions come from Airflow's constraints file below, which pins each package to the version",
        "# MWAA's image already has; a different == pin here would make pip refuse the whole file.",
        f'--constraint "{constraints_url(airflow_version, python_version)}"',
        *(f"{name:<{width}}  # {why}" for name, why in RUNTIME_REQUIREMENTS),
        f"# esteira: its wheel, in plugins.zip, which MWAA unpacks to {MWAA_PLUGINS_FOLDER}. pip also",
        "# installs what the wheel's metadata requires, at the versions of the constraints file:",
        *(f"#   {requirement}" for requirement in wheel_requires(wheel)),
        wheel_path_on_mwaa(wheel_name),
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


def _checkout_file(path: Path) -> bytes:
    """A file of the repo the bundle copies; BundleError, not a traceback, where it is missing."""
    if not path.is_file():
        raise BundleError(f"{path}: missing; the bundle takes it from a checkout of the repo "
                          "(a pip-installed esteira does not ship it): run mwaa-bundle from a checkout")
    return path.read_bytes()


def _pyproject(checkout: Path) -> dict[str, Any]:
    """The checkout's pyproject.toml, checked to be esteira's; BundleError where there is none."""
    raw = _checkout_file(checkout / "pyproject.toml")
    try:
        config = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BundleError(f"{checkout / 'pyproject.toml'}: not readable TOML ({exc})") from None
    if config.get("project", {}).get("name") != "esteira":
        raise BundleError(f"{checkout / 'pyproject.toml'}: not esteira's; run mwaa-bundle from a checkout of the repo")
    return config


def wheel_source_dirs(checkout: Path = CHECKOUT) -> list[Path]:
    """The folders pyproject.toml builds the wheel from (its package-dir): plugins/, asl_export/..."""
    package_dirs = _pyproject(checkout).get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return [checkout / rel for rel in sorted(set(package_dirs.values()))]


def wheel_sources(checkout: Path = CHECKOUT) -> dict[str, bytes]:
    """{posix path: bytes} a wheel of esteira is built from: pyproject.toml, its readme, license
    files, and the folders of its package-dir less caches, dotfiles and stale *.egg-info."""
    readme = _pyproject(checkout)["project"].get("readme")
    names = {"pyproject.toml", *([readme] if isinstance(readme, str) else [])}
    names |= {path.name for pattern in _ROOT_FILE_PATTERNS for path in checkout.glob(pattern) if path.is_file()}
    sources = {name: _checkout_file(checkout / name) for name in sorted(names)}
    for folder in wheel_source_dirs(checkout):
        base = folder.relative_to(checkout).as_posix()
        sources |= {f"{base}/{rel}": path.read_bytes() for rel, path in _files(folder)
                    if not any(part.endswith(".egg-info") for part in rel.split("/"))}
    return dict(sorted(sources.items()))


def _build_wheel(sources: dict[str, bytes]) -> tuple[str, bytes]:
    """Build the wheel of `sources` offline in a temporary folder: (file name, bytes), reproducibly.

    BundleIOError when the temporary copy cannot be written (a full disk), BundleError when pip fails.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="esteira-wheel-") as temp:
            return _build_wheel_in(Path(temp), sources)
    except OSError as exc:  # the temporary folder itself
        raise _io_error("write", exc.filename or tempfile.gettempdir(), exc) from None


def _build_wheel_in(temp: Path, sources: dict[str, bytes]) -> tuple[str, bytes]:
    """Copy `sources` to temp/src (mode 0644), run pip wheel on the copy into temp/dist."""
    src, dist = temp / "src", temp / "dist"
    for rel, data in sources.items():
        path = src / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o644)  # the wheel records each file's mode: not the user's umask
        except OSError as exc:
            raise _io_error("write", path, exc) from None
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "SETUPTOOLS_"))}
    env |= {"SOURCE_DATE_EPOCH": _SOURCE_DATE_EPOCH, "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
               "--no-index", "--no-cache-dir", "--wheel-dir", str(dist), str(src)]
    try:
        done = subprocess.run(command, cwd=temp, env=env, umask=0o022, capture_output=True, text=True,
                              timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError(f"could not build esteira's wheel: {exc}") from None
    wheels = sorted(dist.glob("esteira-*-py3-none-any.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        said = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise BundleError(f"could not build esteira's wheel with `{sys.executable} -m pip wheel "
                          "--no-build-isolation` (it needs pip and setuptools, pyproject.toml's "
                          f"build backend, installed): {said[-1] if said else f'exit {done.returncode}'}")
    return wheels[0].name, wheels[0].read_bytes()


def esteira_wheel(checkout: Path = CHECKOUT) -> tuple[str, bytes]:
    """(file name, bytes) of esteira's wheel built from the checkout; built once per process for
    given sources (keyed by their content, so an edit between two bundles builds a new one)."""
    sources = wheel_sources(checkout)
    digest = hashlib.sha256()
    for rel, data in sources.items():
        digest.update(f"{rel}\0{_sha256(data)}\0".encode())
    key = digest.hexdigest()
    if key not in _WHEELS:
        _WHEELS[key] = _build_wheel(sources)
    return _WHEELS[key]


def plugins_zip(wheel_name: str, wheel: bytes) -> bytes:
    """plugins.zip: esteira's plugin module and its wheel at the zip root, nothing else.

    MWAA unpacks it into the plugins folder, whose loader imports only .py files: the plugin module,
    never the wheel (so no .airflowignore is needed there).
    """
    entries = {PLUGIN_MODULE.name: _checkout_file(PLUGIN_MODULE), wheel_name: wheel}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix: unzip applies the mode below
            info.external_attr = _ZIP_MODE
            archive.writestr(info, entries[name], compresslevel=9)
    return buffer.getvalue()


def zip_names(data: bytes) -> list[str]:
    """The names a zip (plugins.zip) holds, in its order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


def render_bundle(projects_dir: Path, *, airflow_version: str = DEFAULT_AIRFLOW_VERSION,
                  python_version: str = DEFAULT_PYTHON_VERSION, package_dir: Path = PACKAGE_DIR) -> dict[str, bytes]:
    """{path in the bundle: bytes} for every file of the bundle; raises BundleError on bad input.

    The projects are copied as they are: check them first (the CLI runs `validate`'s checks). The
    DAG files are as many as `esteira dag-files` writes for these projects (esteira.dag_files).
    """
    check_versions(airflow_version, python_version)
    if not (projects_dir / "environments.yaml").is_file():
        raise BundleError(f"{projects_dir}: no environments.yaml here; --projects-dir must be the folder "
                          "that holds environments.yaml and the <project>/config.yaml folders")
    if not (package_dir / "__init__.py").is_file():
        raise BundleError(f"{package_dir}: not the esteira package")
    dag_file_count = dag_files.files_needed(len(project_files(projects_dir)))
    wheel_name, wheel = esteira_wheel(package_dir.parents[1])
    files = {
        **{f"{DAGS}/{name}": dag_files.DAG_FILE_TEXT.encode() for name in dag_files.file_names(dag_file_count)},
        f"{DAGS}/.airflowignore": DAGS_AIRFLOWIGNORE.encode(),
        PLUGINS_ZIP: plugins_zip(wheel_name, wheel),
        REQUIREMENTS: requirements_txt(airflow_version, python_version, wheel_name, wheel).encode(),
    }
    files |= {f"{DAGS}/{PROJECTS_FOLDER}/{rel}": path.read_bytes() for rel, path in _files(projects_dir)}
    return dict(sorted(files.items()))


@dataclass(frozen=True)
class Written:
    """What a run did: the bundle's files, those written, those already identical, those removed."""

    files: dict[str, bytes]
    written: list[str]
    unchanged: list[str]
    removed: list[str]


@dataclass(frozen=True)
class _Plan:
    write: list[str]  # bundle files missing on disk or holding other bytes
    remove: list[str]  # the previous bundle's files the new one no longer has
    current: bytes | None  # the manifest on disk
    interim: bytes  # the manifest while writing: old and new bytes are both esteira's
    final: bytes


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_json(digests: dict[str, str], previous: dict[str, str] | None = None) -> bytes:
    """The manifest: sorted, no timestamps, so it too is byte-identical on re-runs."""
    doc: dict[str, object] = {
        "comment": "Written by `python -m esteira mwaa-bundle`, which replaces or removes only the files "
                   "listed here, and only while their sha256 matches. Keep it beside dags/; do not upload it.",
        "files": dict(sorted(digests.items())),
        "format": MANIFEST_FORMAT,
    }
    if previous:  # only while a run is writing; the finished manifest has none
        doc["previous"] = dict(sorted(previous.items()))
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _is_bundle_path(rel: object) -> bool:
    """A plain relative posix path inside the folder: no '..', '.', empty or absolute parts."""
    return (isinstance(rel, str) and rel != MANIFEST and not rel.startswith("/") and "\\" not in rel
            and all(part not in ("", ".", "..") for part in rel.split("/")))


def _parse_manifest(raw: bytes) -> dict[str, set[str]]:
    """{path: the sha256 digests esteira accepts as its own}; ValueError when not a manifest of ours."""
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), dict):
        raise ValueError(f"not format {MANIFEST_FORMAT} with a files table")
    accepted: dict[str, set[str]] = {}
    for key in ("files", "previous"):
        table = doc.get(key, {})
        if not isinstance(table, dict):
            raise ValueError(f"{key!r} is not a table")
        for rel, digest in table.items():
            if not _is_bundle_path(rel) or not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                raise ValueError(f"bad entry {rel!r}")
            accepted.setdefault(rel, set()).add(digest)
    return accepted


def _scan(out: Path) -> dict[str, str]:
    """{posix path relative to out: 'file' | 'folder' | 'symlink' | 'other'} for everything under out.

    Never follows a symlink: one is reported as itself, never walked into.
    """
    kinds: dict[str, str] = {}
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        folder = out / rel_dir if rel_dir else out
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    if entry.is_symlink():
                        kinds[rel] = "symlink"
                    elif entry.is_dir(follow_symlinks=False):
                        kinds[rel] = "folder"
                        pending.append(rel)
                    else:
                        kinds[rel] = "file" if entry.is_file(follow_symlinks=False) else "other"
        except OSError as exc:
            raise _io_error("read", folder, exc) from None
    return kinds


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _io_error("read", path, exc) from None


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:_NAMED])
    return shown + (f" and {len(paths) - _NAMED} more" if len(paths) > _NAMED else "")


def _plural(paths: list[str], noun: str) -> str:
    return f"{len(paths)} {noun}{'' if len(paths) == 1 else 's'}"


def _plan(out: Path, files: dict[str, bytes]) -> _Plan | None:
    """What writing `files` to `out` takes; None when out already holds exactly them.

    Raises BundleError when out holds anything esteira did not write (nothing is written then).
    """
    try:
        is_folder = stat.S_ISDIR(os.stat(out).st_mode)  # out itself may be a symlink: the user named it
    except FileNotFoundError:
        kinds: dict[str, str] = {}
    except OSError as exc:
        raise _io_error("write", out, exc) from None
    else:
        if not is_folder:
            raise BundleIOError(f"could not write {out}: it exists and is not a folder; "
                                "--out names the folder that gets dags/, plugins.zip and requirements.txt")
        kinds = _scan(out)

    has_manifest = kinds.get(MANIFEST) == "file"
    current = _read(out / MANIFEST) if has_manifest else None
    owned: dict[str, set[str]] = {}
    if current is not None:
        try:
            owned = _parse_manifest(current)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise BundleError(f"--out {out}: {MANIFEST} is not a manifest this esteira wrote ({exc}); nothing "
                              "written. Choose an empty folder, or empty this one") from None

    on_disk = {rel: _sha256(_read(out / rel)) for rel in sorted(owned) if kinds.get(rel) == "file"}
    foreign = sorted(f"{rel} (a symlink)" if kind == "symlink" else rel for rel, kind in kinds.items()
                     if kind != "folder" and rel not in on_disk and not (rel == MANIFEST and has_manifest))
    changed = sorted(rel for rel, digest in on_disk.items() if digest not in owned[rel])
    remove = [rel for rel in on_disk if rel not in files]
    blocked = sorted(rel for rel in files if kinds.get(rel) == "folder"  # unless it only holds files to remove
                     and not any(old.startswith(f"{rel}/") for old in remove))
    if foreign or changed or blocked:
        held = []
        if foreign:
            held.append(f"{_plural(foreign, 'file')} esteira did not write ({_names(foreign)})")
        if changed:
            held.append(f"{_plural(changed, 'file')} changed since esteira wrote "
                        f"{'it' if len(changed) == 1 else 'them'}, so no longer esteira's ({_names(changed)})")
        if blocked:
            held.append(f"{_plural(blocked, 'folder')} where the bundle writes a file ({_names(blocked)})")
        if not has_manifest:
            held.append(f"no {MANIFEST}, so no bundle of esteira's (one from before esteira kept a manifest "
                        "must be removed once)")
        raise BundleError(f"--out {out}: holds {'; '.join(held)}. Nothing written: esteira never replaces or "
                          "deletes a file that is not its own. Choose an empty folder, or move or remove those files")

    digests = {rel: _sha256(data) for rel, data in files.items()}
    write = [rel for rel in files if on_disk.get(rel) != digests[rel]]
    final = manifest_json(digests)
    if not write and not remove and current == final:
        return None
    interim = manifest_json(digests | {rel: on_disk[rel] for rel in remove},
                            {rel: on_disk[rel] for rel in write if rel in on_disk})
    return _Plan(write=write, remove=remove, current=current, interim=interim, final=final)


def _make_folders(out: Path, rel: str) -> None:
    """Create rel's parent folders under out; refuse one that is (now) a symlink or a file."""
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        folder = out.joinpath(*parts[:depth])
        try:
            os.mkdir(folder)
        except FileExistsError:
            try:
                if not stat.S_ISDIR(os.lstat(folder).st_mode):
                    raise BundleIOError(f"could not write {folder}: not a folder (it changed while esteira "
                                        "was writing)") from None
            except OSError as exc:
                raise _io_error("write", folder, exc) from None
        except OSError as exc:
            raise _io_error("write", folder, exc) from None


def _write_file(path: Path, data: bytes) -> None:
    """Write to a temporary file beside path, then rename it over path; the temporary never survives.

    os.open's mode 0o666 lets the user's umask decide the permissions, as for any file they create.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(temp, flags, 0o666)
    except OSError as exc:
        raise _io_error("write", path, exc) from None
    try:
        with open(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as exc:  # KeyboardInterrupt too: no temporary file is left behind
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise _io_error("write", path, exc) from None
        raise


def _remove_file(out: Path, rel: str) -> None:
    """Remove one of the previous bundle's files, then the folders that leaves empty (never out)."""
    path = out / rel
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise _io_error("remove", path, exc) from None
    parts = rel.split("/")
    for depth in range(len(parts) - 1, 0, -1):
        try:
            os.rmdir(out.joinpath(*parts[:depth]))
        except OSError:  # not empty (or not ours to remove): stop there
            break


def write_bundle(out: Path, files: dict[str, bytes]) -> Written:
    """Write `files` to `out`, an empty folder, a missing one or a previous bundle; then the manifest.

    Raises BundleError, before writing anything, when out holds a file esteira did not write, and
    BundleIOError when a file cannot be read or written.
    """
    plan = _plan(out, files)
    if plan is None:
        return Written(files, [], list(files), [])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _io_error("write", out, exc) from None
    if plan.interim != plan.current:  # first: a run stopped half-way leaves a folder the next run owns
        _write_file(out / MANIFEST, plan.interim)
    for rel in plan.remove:
        _remove_file(out, rel)
    for rel in plan.write:
        _make_folders(out, rel)
        _write_file(out / rel, files[rel])
    if plan.final != plan.interim:
        _write_file(out / MANIFEST, plan.final)
    return Written(files, plan.write, [rel for rel in files if rel not in plan.write], plan.remove)


def build_bundle(out: Path, projects_dir: Path, *, airflow_version: str = DEFAULT_AIRFLOW_VERSION,
                 python_version: str = DEFAULT_PYTHON_VERSION) -> Written:
    """Render the bundle and write it to `out` (see write_bundle); returns what the run did."""
    resolved = out.resolve()
    try:
        wheel_dirs = wheel_source_dirs()
    except BundleError:  # no checkout: render_bundle says so
        wheel_dirs = [PACKAGE_DIR]
    for source in (projects_dir.resolve(), *(folder.resolve() for folder in wheel_dirs)):
        if resolved == source or source in resolved.parents:
            raise BundleError(f"--out {out}: is inside {source}, which the bundle copies; choose a folder outside it")
    try:
        files = render_bundle(projects_dir, airflow_version=airflow_version, python_version=python_version)
    except OSError as exc:
        raise _io_error("read", exc.filename or projects_dir, exc) from None
    return write_bundle(out, files)
