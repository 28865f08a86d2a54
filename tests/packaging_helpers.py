"""esteira as a user gets it: the wheel built from the checkout, installed in a fresh virtualenv.

Offline and fast, yet honest about dependencies: the virtualenv (no system site-packages) receives
the wheel (pip, --no-deps) and exactly the dependency closure the wheel's metadata declares for the
extras asked for, each distribution's files hard-linked from the running environment (whose versions
are the locked ones). Nothing else is importable there, so a dependency the code imports but the
metadata does not declare fails here as it would after `pip install esteira`, and `pip check` holds
the declared ranges against the installed versions. Shared by tests/ and tests_airflow2/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from email.message import Message
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def build_wheel(out: Path) -> Path:
    """The wheel of the checkout's files (tracked and new, not ignored), built offline.

    Built from a copy: setuptools builds in the source tree, and a stale build/lib there could
    put files the checkout no longer has into the wheel.
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    src = out / "src"
    for rel in filter(None, listed):
        path = REPO / rel
        if path.is_file():  # a tracked file deleted in the work tree is not part of the checkout
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / rel)
    # --no-build-isolation: the backend is requirements-dev.txt's pinned setuptools, and no index is needed
    subprocess.run([*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(src)],
                   check=True, capture_output=True)
    (wheel,) = out.glob("esteira-*.whl")
    return wheel


def wheel_metadata(wheel: Path) -> tuple[list[str], Message]:
    """(the names in a wheel, its METADATA: fields that repeat, like Requires-Dist, via get_all)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (meta,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        return names, HeaderParser().parsestr(archive.read(meta).decode())


def dependency_closure(requirements: Iterable[str], extras: Iterable[str] = ()) -> dict[str, metadata.Distribution]:
    """The installed distributions `requirements` need (markers evaluated for `extras`), transitively."""
    todo = [(Requirement(line), extra) for line in requirements for extra in ("", *extras)]
    seen: set[tuple[str, str]] = set()
    found: dict[str, metadata.Distribution] = {}
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = found.get(name) or metadata.distribution(req.name)  # PackageNotFoundError: not installed here
        found[name] = dist
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) not in seen:
                seen.add((name, wanted))
                todo += [(Requirement(line), wanted) for line in dist.requires or []]
    return found


def make_venv(root: Path, wheel: Path, extras: tuple[str, ...] = ()) -> Path:
    """A fresh virtualenv at `root` holding the wheel and its declared closure for `extras`; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    _, fields = wheel_metadata(wheel)
    for dist in dependency_closure(fields.get_all("Requires-Dist") or [], extras).values():
        for file in dist.files or []:
            if file.parts[0] == "..":  # a console script of a dependency: not needed, and bound to another python
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            source = Path(file.locate())
            if source.is_file() and not target.exists():
                try:
                    os.link(source, target)  # Python replaces a .pyc by rename, never in place
                except OSError:
                    shutil.copy2(source, target)
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment for the installed esteira: nothing of this test session leaks in."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    return {**env, **extra}


# Run by an installed esteira[airflow]'s python: which plugins Airflow loaded, from where, with which
# errors, and the timetables registered; Airflow 3 and 2 name these differently.
# Code for `python -c`: sets `plugins` [(name, source)], `plugin_errors` and `timetables`.
LOADED_PLUGINS = """
from airflow import plugins_manager as pm
if hasattr(pm, "get_import_errors"):  # Airflow 3
    plugins = [(i["name"], str(i["source"])) for i in pm.get_plugin_info(attrs_to_dump=["source"])]
    plugin_errors, timetables = pm.get_import_errors(), pm.get_timetables_plugins()
else:  # Airflow 2
    pm.initialize_timetables_plugins()
    plugins = [(p.name, str(p.source)) for p in pm.plugins]
    plugin_errors, timetables = pm.import_errors, pm.timetable_classes
"""
PLUGIN_REPORT = "import json, esteira_plugin" + LOADED_PLUGINS + """
print(json.dumps({"module": esteira_plugin.__file__, "plugins": plugins,
                  "errors": {str(k): str(v) for k, v in plugin_errors.items()}, "timetables": sorted(timetables)}))
"""
