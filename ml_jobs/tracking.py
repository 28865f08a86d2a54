"""MLflow for the steps: connect (failing fast and clearly), tagged runs, models in and out.

Importing this module sets MLflow's environment before MLflow is imported: no telemetry
(a step must not reach the internet), GitPython quiet when git is absent (containers), and
bounded HTTP retries so an unreachable server fails a step in seconds, not minutes (the
orchestrator retries the whole step anyway). Values already set in the environment win.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_jobs.errors import JobError, MlflowUnavailable
from ml_jobs.runtime import StepContext, first_line

for _name, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "GIT_PYTHON_REFRESH": "quiet",
                      "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}.items():
    os.environ.setdefault(_name, _value)

import mlflow  # noqa: E402  (after the environment above)
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion

# HistGradientBoosting trees are saved with skops (MLflow's safe default format), which asks
# for this type to be trusted explicitly; we wrote these files ourselves.
SKOPS_TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


@dataclass(frozen=True)
class Tracker:
    ctx: StepContext
    client: MlflowClient
    experiment_id: str

    @property
    def model_name(self) -> str:
        """The registered model is named after the project."""
        return self.ctx.project

    @contextmanager
    def run(self, run_id: str | None = None) -> Iterator[Any]:
        """A run tagged with the step, date, orchestrator run and code version; resumes `run_id`."""
        try:
            if run_id is None:
                active = mlflow.start_run(experiment_id=self.experiment_id, tags=self.ctx.tags(),
                                          run_name=f"{self.ctx.step} {self.ctx.day}")
            else:
                active = mlflow.start_run(run_id=run_id)
                mlflow.set_tags({f"{self.ctx.step}.run_id": self.ctx.run_id})
        except MlflowException as exc:
            raise MlflowUnavailable(f"MLflow at {self.ctx.tracking_uri}: {first_line(exc)}") from None
        with active as run:
            yield run


def connect(ctx: StepContext) -> Tracker:
    """Point MLflow at MLFLOW_TRACKING_URI and make sure the project's experiment exists."""
    with _first_use_lock(ctx.tracking_uri):
        client = open_client(ctx.tracking_uri)
        try:
            experiment_id = _experiment(client, ctx.project, ctx.tracking_uri)
        except MlflowException as exc:
            raise MlflowUnavailable(f"MLflow at {ctx.tracking_uri} is unreachable or refused the request: "
                                    f"{first_line(exc)}") from None
    mlflow.set_experiment(experiment_id=experiment_id)
    return Tracker(ctx, client, experiment_id)


@contextmanager
def _first_use_lock(uri: str) -> Iterator[None]:
    """Serialise the creation of a local database and experiment between parallel steps.

    churn's two trainers start together; on a fresh sqlite file both would run MLflow's schema
    migrations at once. A tracking server needs no lock.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock = _sqlite_path(uri).with_name(_sqlite_path(uri).name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = lock.open("a")
    except OSError as exc:
        raise MlflowUnavailable(f"MLflow at {uri} is unreachable: cannot create {lock}: {exc.strerror}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_client(uri: str, *, create: bool = True) -> MlflowClient:
    """A client for `uri`, after a quick check that fails clearly when MLflow is out of reach.

    `create=False` (the registry CLI) refuses to start an empty local database by mistake.
    """
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    elif uri.startswith("sqlite:///"):
        if not create and not _sqlite_path(uri).is_file():
            raise MlflowUnavailable(f"no MLflow database at {_sqlite_path(uri)}: run a pipeline first "
                                    "or point --tracking-uri / MLFLOW_TRACKING_URI at it")
        _check_sqlite(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.search_experiments(max_results=1)  # opens (and, on first use, creates) the store now
    except MlflowException as exc:
        raise MlflowUnavailable(f"MLflow at {uri} is unreachable or refused the request: {first_line(exc)}") from None
    return client


def _check_server(uri: str) -> None:
    """A tracking server that does not answer fails here in seconds, with the reason."""
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10).close()
    except urllib.error.HTTPError:
        return  # it answered (maybe 401/404): reachable; requests will say the rest
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MlflowUnavailable(f"MLflow at {uri} is unreachable: {reason}") from None


def _check_sqlite(uri: str) -> None:
    """The local default: the database file can be created (its folder is made if missing)."""
    path = _sqlite_path(uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MlflowUnavailable(f"MLflow at {uri} is unreachable: cannot create {path.parent}: "
                                f"{exc.strerror}") from None
    if path.exists() and not path.is_file():
        raise MlflowUnavailable(f"MLflow at {uri} is unreachable: {path} is not a database file")


def _sqlite_path(uri: str) -> Path:
    """sqlite:////abs/file.db -> /abs/file.db; sqlite:///rel.db -> rel.db (SQLAlchemy's reading)."""
    return Path(uri.removeprefix("sqlite:///"))


def _experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, creating it; a local store keeps artifacts next to its database."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # not ./mlruns under whatever folder the step runs in
        location = (_sqlite_path(uri).parent / "artifacts" / name).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # a parallel step created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def log_classifier(model: Any, example: pd.DataFrame, *, name: str = "model") -> dict[str, str]:
    """Log a fitted scikit-learn classifier with its signature and an input example.

    The pyfunc flavour predicts probabilities (predict_proba), which ranking and scoring
    need. Requirements are given, not inferred: inference loads the model in a subprocess.
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict_proba(example))
    info = mlflow.sklearn.log_model(
        model, name=name, signature=signature, input_example=example.head(5),
        pyfunc_predict_fn="predict_proba", skops_trusted_types=SKOPS_TRUSTED,
        pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
    )
    return {"model_uri": info.model_uri, "model_id": info.model_id}


def load_scorer(model_uri: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """The model's probability of the positive class, for a frame with its input columns."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_uri)
    names = [c.name for c in model.metadata.get_input_schema().inputs]

    def score(frame: pd.DataFrame) -> np.ndarray:
        return model.predict(frame[names])[:, 1]

    return score


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version under the `champion` alias (the latest run date's), or None (alias never set)."""
    try:
        return client.get_model_version_by_alias(name, "champion")
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def champion_scorer(ctx: StepContext, made_by: str) -> tuple[ModelVersion, Callable[[pd.DataFrame], np.ndarray]]:
    """What a scoring step needs: the champion as of the run's RUN_DATE (resolved once, so every row
    can name it) and its scorer.

    Not the alias: in a backfill the alias may already hold a model promoted for a later date, and
    scoring an earlier date with it would use the future. No champion for the date is the user's to
    fix, and the error says how (`made_by` registers one).
    """
    from ml_jobs.registry import champion_version

    tracker = connect(ctx)
    name = tracker.model_name
    version = champion_version(tracker.client, name, ctx.as_of)
    if version is None:
        raise JobError(f"model {name} has no champion as of {ctx.run_date}: run {made_by} for this date, or "
                       f"promote a version with python -m ml_jobs.registry --model {name} promote VERSION "
                       f"--from {ctx.run_date}")
    return version, load_scorer(f"models:/{name}/{version.version}")
