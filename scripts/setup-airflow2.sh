#!/usr/bin/env bash
# Create or update .venv-airflow2/: Airflow 2.11 (the newest Airflow 2 that MWAA runs) for
# tests_airflow2/, separate from the main .venv (Airflow 3). Idempotent: everything is installed
# from requirements-airflow2.lock (requirements-airflow2.txt resolved under constraints-airflow2.txt,
# with the sha256 of every file; `make lock`), and when none of the inputs changed since the last
# install (their checksums are in the stamp file) it returns at once.
#
#   bash scripts/setup-airflow2.sh            # then: .venv-airflow2/bin/python -m pytest tests_airflow2
#   PYTHON=python3.11 VENV=.venv-airflow2     # the defaults
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv-airflow2}
STAMP=$VENV/.installed
INPUTS=(requirements-airflow2.lock pyproject.toml plugins/esteira/__init__.py scripts/setup-airflow2.sh)
PIP=(-q --disable-pip-version-check)

want=$( { "$PYTHON" -c 'import sys; print(sys.version)'; sha256sum "${INPUTS[@]}"; } )
if [[ -x $VENV/bin/python && -f $STAMP && "$(cat "$STAMP")" == "$want" ]]; then
    echo "$VENV: up to date"
    exit 0
fi

[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
rm -f "$STAMP"  # a failed or interrupted install is never mistaken for a good one
"$VENV/bin/python" -m pip install "${PIP[@]}" pip==25.3
"$VENV/bin/pip" install "${PIP[@]}" --require-hashes -r requirements-airflow2.lock
# esteira itself (and the packages pyproject lists next to it), editable, without dependencies:
# those are the locked ones above; built by the locked setuptools (no build isolation).
"$VENV/bin/pip" install "${PIP[@]}" --no-deps --no-build-isolation -e .
"$VENV/bin/pip" check
echo "$want" > "$STAMP"
echo "$VENV: installed ($("$VENV/bin/python" -c 'import airflow; print("Apache Airflow", airflow.__version__)'))"
