"""Airflow plugin: registers esteira's timetable, so the scheduler can read the DAGs that use it.

The only esteira file Airflow's plugin loader imports (plugins/.airflowignore keeps it out of the
package itself).
"""

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from esteira.airflow.timetable import EsteiraTimetable


class EsteiraPlugin(AirflowPlugin):
    name = "esteira"
    timetables: ClassVar[list[type]] = [EsteiraTimetable]
