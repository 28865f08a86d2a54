"""The MWAA bundle under Airflow 2.11, in MWAA's layout: dags/ synced, plugins.zip unpacked on sys.path.

A fresh interpreter sees only the bundle: esteira from plugins/, the projects from the bundled
dags/ folder (ESTEIRA_PROJECTS_DIR unset), AIRFLOW_ENV_NAME set as MWAA sets it. Airflow 2 reads
.airflowignore files as regular expressions (Airflow 3: globs), so both ignore files are checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from config_oracle import CONFIGS

PROBE = r"""
import json, sys
from airflow.models.dagbag import DagBag
from airflow.utils.file import find_path_from_directory, list_py_file_paths
import esteira
from esteira.settings import Settings

dags, plugins = sys.argv[1:]
bag = DagBag(dag_folder=dags, include_examples=False)
from airflow import plugins_manager
from airflow.serialization.serialized_objects import SerializedDAG
plugins_manager.initialize_timetables_plugins()
# what the scheduler reads: each DAG serialized and back, its timetable found through the plugin
timetables = {dag_id: type(SerializedDAG.from_dict(SerializedDAG.to_dict(dag)).timetable).__name__
              for dag_id, dag in bag.dags.items()}
print("PROBE:" + json.dumps({
    "esteira": esteira.__file__,
    "projects_dir": str(Settings.from_environ().projects_dir),
    "dag_files": list_py_file_paths(dags, safe_mode=False),
    "plugin_files": sorted(find_path_from_directory(plugins, ".airflowignore")),
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "registered_timetables": sorted(plugins_manager.timetable_classes),
    "timetables": timetables,
    "dags": {dag_id: {"tasks": [t.task_id for t in dag.tasks],
                      "operators": sorted({type(t).__name__ for t in dag.tasks}), "tags": dag.tags}
             for dag_id, dag in bag.dags.items()},
}))
"""


def test_the_bundle_loads_under_airflow_2_from_the_bundle_alone(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESTEIRA_") and k != "PYTHONPATH"}
    out = tmp_path / "bundle"
    made = subprocess.run([sys.executable, "-m", "esteira", "mwaa-bundle", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert made.returncode == 0, made.stderr
    home = tmp_path / "usr-local-airflow"
    (home / "dags").mkdir(parents=True)
    for path in (out / "dags").rglob("*"):
        if path.is_file():
            dest = home / "dags" / path.relative_to(out / "dags")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
    with zipfile.ZipFile(out / "plugins.zip") as archive:
        archive.extractall(home / "plugins")
    decoy = home / "dags" / "esteira_projects" / next(iter(CONFIGS)) / "steps" / "not_a_dag.py"
    decoy.parent.mkdir(exist_ok=True)
    decoy.write_text("# mentions airflow and DAG, as Airflow's safe mode looks for\nraise SystemExit('parsed')\n")

    dags, plugins = home / "dags", home / "plugins"
    env |= {"PYTHONPATH": str(plugins), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins), "AIRFLOW_ENV_NAME": "esteira-test"}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(dags), str(plugins)], capture_output=True,
                          text=True, env=env, cwd=home, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("PROBE:")]
    got = json.loads(line.removeprefix("PROBE:"))
    assert got["esteira"].startswith(str(plugins / "esteira"))
    assert got["projects_dir"] == str(dags / "esteira_projects")
    assert got["dag_files"] == [str(dags / "esteira_dags.py")]  # dags/.airflowignore, as a regexp
    # plugins/.airflowignore: the plugin loader imports esteira's plugin module, not the package
    assert got["plugin_files"] == [str(plugins / "esteira_plugin.py")]
    assert got["registered_timetables"] == ["esteira.airflow.timetable.EsteiraTimetable"]
    assert got["timetables"] == dict.fromkeys(CONFIGS, "EsteiraTimetable")
    assert got["import_errors"] == {}
    assert set(got["dags"]) == set(CONFIGS)
    for name, cfg in CONFIGS.items():
        assert "esteira:config-error" not in got["dags"][name]["tags"]
        assert got["dags"][name]["tasks"] == [s["id"] for s in cfg["batch"]["pipeline"]["steps"]]
        assert got["dags"][name]["operators"] == ["EcsRunTaskOperator"]  # MWAA's default backend
