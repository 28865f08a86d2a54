"""recsys step 3: judge the new model on held-out users, register it, and gate it.

The challenger's NDCG@5 / MAP@5 / recall@5 on users it never saw are logged to its training
run (one MLflow run per model: params, metrics, model), next to a popularity baseline that
says what "no personalisation" scores. The model becomes a new registered version with the
`challenger` alias; the champion as of the run date is scored on the SAME held-out users and
the challenger is promoted only if it beats it (see ml_jobs.registry for the rules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from ml_jobs.recsys import GATE_METRIC, TOP_K
from ml_jobs.recsys.features import LABEL, LABELLED
from ml_jobs.runtime import StepContext, log, run_step

_TRAIN_OUTPUTS = ("mlflow_run_id", "model_uri", "model_id")


def rank_quality(holdout: pd.DataFrame, scores: Any) -> dict[str, float]:
    from ml_jobs.ranking import ranking_metrics

    return ranking_metrics(holdout.assign(score=scores), score="score", relevant=LABEL, k=TOP_K)


def evaluator(holdout: pd.DataFrame) -> Callable[[str], float]:
    """Model URI -> its gate metric on this date's held-out users (used for the champion)."""
    from ml_jobs.tracking import load_scorer

    return lambda uri: rank_quality(holdout, load_scorer(uri)(holdout))[GATE_METRIC]


def evaluate_and_register(ctx: StepContext) -> dict[str, Any]:
    part = ctx.partition
    holdout = part.read_table("holdout.parquet", "extract_features", LABELLED)
    trained = part.read_json("train.json", "train")
    missing = [k for k in _TRAIN_OUTPUTS if not trained.get(k)]
    if missing:
        from ml_jobs.errors import DataError

        raise DataError(f"{part.where('train.json')} lacks {', '.join(missing)}")
    from ml_jobs import registry, tracking

    tracker = tracking.connect(ctx)
    metrics = rank_quality(holdout, tracking.load_scorer(trained["model_uri"])(holdout))
    baseline = rank_quality(holdout, holdout["vehicle_popularity"].to_numpy())
    metrics |= {f"baseline_{k}": v for k, v in baseline.items() if k != "eval_users"}
    with tracker.run(run_id=trained["mlflow_run_id"]):
        tracking.mlflow.log_metrics(metrics, model_id=trained["model_id"])
    log("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    version = registry.register(
        tracker.client, tracker.model_name, trained["model_uri"], metric=GATE_METRIC,
        tags={**ctx.tags(), "esteira.model_kind": "hist_gradient_boosting", f"esteira.metric.{GATE_METRIC}":
              repr(metrics[GATE_METRIC])},
        description=f"recsys ranker trained for {ctx.day}; {GATE_METRIC}={metrics[GATE_METRIC]:.4f} on held-out users")
    outcome = registry.challenge(tracker.client, tracker.model_name, version.version, run_date=ctx.run_date,
                                 run_id=ctx.run_id, metric=GATE_METRIC, challenger_value=metrics[GATE_METRIC],
                                 evaluate=evaluator(holdout))
    return {"metrics": metrics, **outcome}


def main() -> None:
    run_step("evaluate_and_register", evaluate_and_register)


if __name__ == "__main__":
    main()
