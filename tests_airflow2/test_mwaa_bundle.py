"""The MWAA bundle under Airflow 2.11, deployed as MWAA deploys it (tests/mwaa_helpers.py).

dags/ synced, plugins.zip unpacked into <home>/plugins, and requirements.txt installed as MWAA's pip
would: the wheel it names (/usr/local/airflow/plugins/... there, <home>/plugins/... here) with pip
into a folder of its own, every other requirement already satisfied by this environment under its
constraints (constraints-airflow2.txt, pinned as Airflow 2.11's file pins MWAA's image). A fresh
interpreter sees only that: esteira from the install, the plugin from <home>/plugins, the projects
from the bundled dags/ folder (ESTEIRA_PROJECTS_DIR unset), AIRFLOW_ENV_NAME set as MWAA sets it.
Airflow 2 reads .airflowignore files as regular expressions (Airflow 3: globs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from config_oracle import CONFIGS
from mwaa_helpers import (
    MWAA_PLUGINS,
    check_probe,
    install_wheel,
    lay_out,
    probe,
    requirements_here,
    this_checkouts_esteira,
    wheel_line,
    would_install,
)
from session_fixtures import REPO


def test_the_bundle_installs_and_loads_under_airflow_2_as_on_mwaa(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    made = subprocess.run([sys.executable, "-m", "esteira", "mwaa-bundle", "--out", str(out)],
                          capture_output=True, text=True, env=this_checkouts_esteira(), timeout=300)
    assert made.returncode == 0, made.stderr
    assert f"\n{MWAA_PLUGINS}/esteira-" in (out / "requirements.txt").read_text()

    home = tmp_path / "usr-local-airflow"
    lay_out(out, home)
    requirements = requirements_here(out, home, REPO / "constraints-airflow2.txt")
    assert Path(wheel_line(requirements)).parent == home / "plugins"
    # pip, offline: the whole file resolves here, and all it would install is esteira's wheel
    assert [line.split("==")[0] for line in would_install(requirements)] == ["esteira"]
    install_wheel(requirements, home / "site-packages")

    decoy = home / "dags" / "esteira_projects" / next(iter(CONFIGS)) / "steps" / "not_a_dag.py"
    decoy.parent.mkdir(exist_ok=True)
    decoy.write_text("# mentions airflow and DAG, as Airflow's safe mode looks for\nraise SystemExit('parsed')\n")
    check_probe(probe(home, home / "site-packages"), home, home / "site-packages", CONFIGS)
