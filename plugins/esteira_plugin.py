"""Airflow plugin: registers esteira's timetable, so the scheduler can read the DAGs that use it.

Airflow finds it in one of two ways. In this repo and in MWAA's plugins.zip the file sits in
Airflow's plugins folder, whose loader imports it (here plugins/.airflowignore keeps that loader out
of the package beside it; on MWAA the package is installed from the wheel beside it, which the
loader, importing .py files only, leaves alone). A pip-installed esteira has no file there: its
`airflow.plugins` entry point (pyproject.toml) names `entry_point_plugin` below.
"""

from pathlib import Path
from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from esteira.airflow.timetable import EsteiraTimetable


class EsteiraPlugin(AirflowPlugin):
    name = "esteira"
    timetables: ClassVar[list[type]] = [EsteiraTimetable]


def _in_plugins_folder() -> bool:
    """Whether Airflow's plugins-folder loader registers this file (it is inside that folder)."""
    from airflow import settings

    folder = getattr(settings, "PLUGINS_FOLDER", None)
    return bool(folder) and Path(folder).resolve() in Path(__file__).resolve().parents


# Where the folder loader registers EsteiraPlugin, the entry point (installed too, by `pip install
# -e .` here, by the wheel on MWAA) must not register it again: Airflow 3 reports a second plugin
# of one name as an import error. The folder loader runs first and leaves its module in sys.modules
# as esteira_plugin, which the entry point then resolves to. None is not a plugin class, and
# Airflow skips it without a word.
entry_point_plugin: type[AirflowPlugin] | None = None if _in_plugins_folder() else EsteiraPlugin
