# The two commands of the README: `make setup` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROJECT ?= recsys

# Local Airflow: sqlite metadata DB and logs under .esteira/ (git-ignored), our dags/ and plugins/.
export AIRFLOW_HOME ?= $(CURDIR)/.esteira/airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins

.PHONY: setup test run lint typecheck validate bench help airflow2 e2e mwaa-bundle lock
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/:/'

setup: $(VENV)/.installed run  ## create .venv, install everything pinned, run $(PROJECT) end to end locally

# requirements.lock is requirements.txt + requirements-dev.txt resolved under constraints.txt, with the
# sha256 of every file (`make lock`): pip installs exactly those bytes. esteira itself is installed
# editable by the locked setuptools (no build isolation: nothing unpinned is downloaded to build it).
$(VENV)/.installed: requirements.lock pyproject.toml plugins/esteira/__init__.py package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check pip==25.3
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	npm ci --no-audit --no-fund --silent  # asl-validator, pinned by package-lock.json
	touch $@

run: $(VENV)/.installed  ## run one project's DAG through local Airflow (PROJECT=recsys)
	$(BIN)/airflow db migrate > /dev/null
	$(BIN)/airflow dags test $(PROJECT)
	@echo "esteira: $(PROJECT) ran end to end; its outputs are under .esteira/data/$(PROJECT)/<run date>/"
	@echo "esteira: the model registry now (run it again for a new version and a gate decision):"
	@MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/.esteira/mlflow.db $(BIN)/python -m ml_jobs.registry --model $(PROJECT) list
	@echo "esteira: browse runs and models: $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.esteira/mlflow.db"

validate: $(VENV)/.installed  ## check every projects/*/config.yaml and say what is wrong
	$(BIN)/python -m esteira validate

lint: $(VENV)/.installed  ## ruff
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed  ## mypy --strict on plugins/esteira and asl_export ([tool.mypy] in pyproject.toml)
	$(BIN)/mypy

# pytest's exit code 5 means it collected no tests: a suite that tests nothing is a failure here.
define PYTEST
$(1) -m pytest $(2); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests in $(2): that is a failure here"; exit 1; fi; \
	exit $$rc
endef

test: $(VENV)/.installed lint typecheck airflow2 e2e  ## the whole test suite (what CI runs): ruff, mypy, tests/ (Airflow 3, the local stack included), tests_airflow2/ (Airflow 2.11)
	ESTEIRA_E2E_REQUIRED=1 $(call PYTEST,$(BIN)/python,tests)
	$(call PYTEST,.venv-airflow2/bin/python,tests_airflow2)

e2e: $(VENV)/.installed  ## what the local-stack test needs: Debian's postgresql and chromium (apt-get, as root), requirements-e2e.txt
	bash scripts/setup-e2e.sh

airflow2:  ## create/update .venv-airflow2/ (Airflow 2.11, MWAA's newest Airflow 2) for tests_airflow2/
	bash scripts/setup-airflow2.sh

lock: $(VENV)/.installed  ## regenerate requirements*.lock from requirements*.txt and constraints*.txt (uv; needs the package index)
	$(BIN)/python scripts/lock.py

mwaa-bundle: $(VENV)/.installed  ## build the MWAA bundle (dags/, plugins.zip, requirements.txt) under build/mwaa
	$(BIN)/python -m esteira mwaa-bundle --out build/mwaa

# issue 15, in one run: the DAG folder's parse, factory vs hand-written DAGs, at 200 and 5,000 projects
# (benchmarks/dag_parse.py: ~7 min on the reference machine), then one project's export time (~15 s)
bench: $(VENV)/.installed  ## benchmarks (~8 min): DAG-folder parse, factory vs hand-written (200 and 5,000 projects); export time
	$(BIN)/python benchmarks/dag_parse.py --sizes 200 5000 --repeat 3 --large-repeat 2
	if [ -f benchmarks/export_time.py ]; then $(BIN)/python benchmarks/export_time.py; fi
