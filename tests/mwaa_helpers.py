"""Amazon MWAA's deployment of the bundle, done here as MWAA does it; shared by tests/ and tests_airflow2/.

MWAA syncs dags/ to /usr/local/airflow/dags, unpacks plugins.zip into /usr/local/airflow/plugins and
runs `pip install -r requirements.txt`, whose last line names esteira's wheel there. The tests lay
the bundle out under a temporary <home> the same way and install what MWAA's pip would, offline:
Airflow's constraints file on GitHub is out of reach, so the constraints line names the local copy
this environment was resolved under (constraints*.txt, pinned like Airflow's own); the wheel is
installed from <home>/plugins with `pip install --no-deps --no-index --target <site>`; and every
other requirement (the amazon provider, the wheel's own dependencies) must already be satisfied by
this environment, which `pip install --dry-run --no-index` of the whole file checks. A fresh
interpreter then parses the bundled dags/ with esteira from <site> and the plugin from
<home>/plugins, and nothing of the checkout on its path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging_helpers import LOADED_PLUGINS, REPO

MWAA_PLUGINS = "/usr/local/airflow/plugins"  # where MWAA unpacks plugins.zip
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
CONSTRAINT = re.compile(r'^--constraint "([^"]+)"$', re.MULTILINE)

# Run in a fresh interpreter with only the bundle (Airflow 2 and 3): where esteira and the plugin
# come from, the sys.path, the plugins Airflow loaded, and the DagBag of the bundled dags/.
PROBE = r"""
import json, sys
# this venv has esteira installed editable (make setup): its finder would reach the checkout when
# <site> lacks a module; without it, only <site> and the plugins folder can provide esteira
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
try:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag
    from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization
from airflow.utils.file import list_py_file_paths
import esteira

dags = sys.argv[1]
bag = DagBag(dag_folder=dags)  # examples: off in the environment
""" + LOADED_PLUGINS + r"""
from airflow import settings
print("PROBE:" + json.dumps({
    "esteira": esteira.__file__,
    "modules": {name: getattr(module, "__file__", None) for name, module in sorted(sys.modules.items())
                if name.split(".")[0] in ("esteira", "esteira_plugin", "asl_export", "ml_jobs")},
    "sys_path": sys.path,
    "plugins_folder": settings.PLUGINS_FOLDER,
    "plugins": plugins,
    "plugin_errors": {str(k): str(v) for k, v in plugin_errors.items()},
    "registered_timetables": sorted(timetables),
    "dag_files": list_py_file_paths(dags, safe_mode=False),
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {dag_id: {"tasks": [t.task_id for t in dag.tasks],
                      "edges": sorted([u, t.task_id] for t in dag.tasks for u in t.upstream_task_ids),
                      "operators": sorted({type(t).__name__ for t in dag.tasks}),
                      "tags": sorted(dag.tags), "doc_md": dag.doc_md,
                      # what the scheduler reads: the DAG serialized and back, its timetable found
                      # through the plugin
                      "timetable": type(DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable).__name__}
             for dag_id, dag in bag.dags.items()},
}))
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This session's environment (its Airflow home) less esteira's variables and PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESTEIRA_") and k != "PYTHONPATH"}
    return {**env, **extra}


def this_checkouts_esteira(**extra: str) -> dict[str, str]:
    """clean_env for a `python -m esteira` of this checkout (the venvs install another one editable)."""
    return clean_env(PYTHONPATH=str(REPO / "plugins"), **extra)


def lay_out(bundle: Path, home: Path) -> None:
    """The bundle as MWAA lays it out: <home>/dags synced, plugins.zip unpacked into <home>/plugins."""
    shutil.copytree(bundle / "dags", home / "dags")
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        archive.extractall(home / "plugins")


def requirements_here(bundle: Path, home: Path, constraints: Path) -> Path:
    """The bundle's requirements.txt as MWAA's pip reads it, on this machine: the constraints line
    naming `constraints` (a local stand-in for Airflow's file), the wheel's path moved from
    /usr/local/airflow/plugins to <home>/plugins. Nothing else changes."""
    text = (bundle / "requirements.txt").read_text()
    assert len(CONSTRAINT.findall(text)) == 1 and text.count(MWAA_PLUGINS) == 2, text  # a comment names it too
    text = CONSTRAINT.sub(f'--constraint "{constraints}"', text).replace(MWAA_PLUGINS, str(home / "plugins"))
    path = home / "requirements-here.txt"
    path.write_text(text)
    return path


def wheel_line(requirements: Path) -> str:
    """The requirement line naming esteira's wheel (a path, the last line)."""
    lines = [line for line in requirements.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1].endswith(".whl"), lines
    return lines[-1]


def would_install(requirements: Path) -> list[str]:
    """name==version of what `pip install -r requirements` would install in this environment, offline."""
    done = subprocess.run([*PIP, "install", "--dry-run", "--no-index", "--quiet", "--report", "-", "-r",
                           str(requirements)], capture_output=True, text=True, timeout=300, env=clean_env())
    assert done.returncode == 0, done.stderr  # pip found every requirement, under the constraints
    report = json.loads(done.stdout)
    return sorted(f"{item['metadata']['name']}=={item['metadata']['version']}" for item in report["install"])


def install_wheel(requirements: Path, site: Path) -> None:
    """The wheel the requirements name, installed as MWAA's pip installs it, into `site`."""
    done = subprocess.run([*PIP, "install", "--quiet", "--no-deps", "--no-index", "--target", str(site),
                           wheel_line(requirements)], capture_output=True, text=True, timeout=300, env=clean_env())
    assert done.returncode == 0, done.stderr


def probe(home: Path, site: Path) -> dict:
    """PROBE run in a fresh interpreter: esteira from `site` only, the folders MWAA configures,
    AIRFLOW_ENV_NAME set as MWAA sets it, ESTEIRA_PROJECTS_DIR unset."""
    dags, plugins = home / "dags", home / "plugins"
    env = clean_env(PYTHONPATH=str(site), AIRFLOW__CORE__DAGS_FOLDER=str(dags),
                    AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins), AIRFLOW_ENV_NAME="esteira-test",
                    XDG_CACHE_HOME=str(home / ".cache"))  # the compile cache: under <home>, as on MWAA
    proc = subprocess.run([sys.executable, "-c", PROBE, str(dags)], capture_output=True, text=True, env=env,
                          cwd=home, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("PROBE:")]
    return json.loads(line.removeprefix("PROBE:"))


def check_probe(got: dict, home: Path, site: Path, configs: dict) -> None:
    """What both suites require of the probe: every project's DAG, esteira from the installed wheel,
    the timetable plugin from plugins.zip's module, nothing from the checkout."""
    dags, plugins = home / "dags", home / "plugins"
    assert Path(got["esteira"]).is_relative_to(site), got["esteira"]  # the wheel, as pip installed it
    for name, file in got["modules"].items():  # every esteira module: the wheel's, or the plugin module
        expected = plugins / "esteira_plugin.py" if name == "esteira_plugin" else site
        assert file and (Path(file) == expected or Path(file).is_relative_to(expected)), (name, file)
    assert str(REPO / "plugins") not in got["sys_path"] and str(REPO) not in got["sys_path"], got["sys_path"]
    # The plugin loader imports the .py files of the plugins folder and nothing else: esteira_plugin.py,
    # never the wheel beside it, so plugins.zip needs no .airflowignore. One plugin, from that file (the
    # wheel's `airflow.plugins` entry point stands aside: esteira_plugin.entry_point_plugin is None).
    assert got["plugins_folder"] == str(plugins)
    wheel, module = sorted(p.name for p in plugins.iterdir() if p.is_file())  # (Python's __pycache__ aside)
    assert re.fullmatch(r"esteira-[0-9][\w.]*-py3-none-any\.whl", wheel) and module == "esteira_plugin.py"
    assert got["plugins"] == [["esteira", "$PLUGINS_FOLDER/esteira_plugin.py"]], got["plugins"]
    assert got["plugin_errors"] == {}
    assert got["registered_timetables"] == ["esteira.airflow.timetable.EsteiraTimetable"]
    assert got["dag_files"] == [str(dags / "esteira_dags.py")]  # dags/.airflowignore keeps the projects out
    assert got["import_errors"] == {}
    assert set(got["dags"]) == set(configs)
    for name, cfg in configs.items():
        dag = got["dags"][name]
        assert "esteira:config-error" not in dag["tags"], dag["doc_md"]
        assert dag["tasks"] == [s["id"] for s in cfg["batch"]["pipeline"]["steps"]]
        assert dag["operators"] == ["EcsRunTaskOperator"]  # MWAA's default backend
        assert dag["timetable"] == "EsteiraTimetable"
        # the projects beside the DAG file, found without ESTEIRA_PROJECTS_DIR
        assert str(dags / "esteira_projects" / name / "config.yaml") in dag["doc_md"]
