"""esteira[airflow] pip-installed next to Airflow 2.11 (MWAA's newest Airflow 2): its `airflow.plugins`
entry point registers the timetable, with no file in the plugins folder. The wheel and the fresh
virtualenv are made as in tests/test_packaging.py (tests/packaging_helpers.py), from this venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from packaging_helpers import PLUGIN_REPORT, REPO, build_wheel, clean_env, make_venv


def _report(python: Path, plugins: Path, home: Path) -> dict:
    done = subprocess.run([str(python), "-c", PLUGIN_REPORT], cwd=home.parent, capture_output=True, text=True,
                          timeout=120, env=clean_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                                                     AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins)))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_entry_point_registers_the_timetable(tmp_path: Path) -> None:
    python = make_venv(tmp_path / "venv", build_wheel(tmp_path / "wheel"), extras=("airflow",))
    (tmp_path / "plugins").mkdir()
    report = _report(python, tmp_path / "plugins", tmp_path / "home")
    assert Path(report["module"]).is_relative_to(tmp_path / "venv")
    assert [name for name, _ in report["plugins"]] == ["esteira"] and report["errors"] == {}, report
    assert "EntryPoint(name='esteira'" in report["plugins"][0][1]
    assert "esteira.airflow.timetable.EsteiraTimetable" in report["timetables"]


def test_plugins_folder_and_entry_point_register_it_once(tmp_path: Path) -> None:
    """This repo's set-up: esteira installed (editable, so the entry point too) and plugins/ as the
    plugins folder; the folder's copy registers the plugin, the entry point stands aside."""
    report = _report(Path(sys.executable), REPO / "plugins", tmp_path / "home")
    assert [name for name, _ in report["plugins"]] == ["esteira"] and report["errors"] == {}, report
    assert report["plugins"][0][1].endswith("esteira_plugin.py")  # the folder's, not the entry point's
