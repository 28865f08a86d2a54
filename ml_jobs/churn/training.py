"""What both churn candidates share: fit on the training customers, measure on the held-out ones.

Each candidate is its own step (they run in parallel) and its own MLflow run with params,
held-out metrics and the model; select_best compares the runs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml_jobs.churn import AT_RISK
from ml_jobs.churn.features import FEATURES, LABEL, LABELLED
from ml_jobs.errors import DataError
from ml_jobs.runtime import StepContext, log


def classification_metrics(labels: pd.Series, probability: Any) -> dict[str, float]:
    """ROC AUC (the gate's metric: threshold-free) and F1/precision/recall at the at-risk threshold."""
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    flagged = probability >= AT_RISK
    auc = float(roc_auc_score(labels, probability)) if labels.nunique() == 2 else float("nan")
    return {"roc_auc": auc, "f1": float(f1_score(labels, flagged, zero_division=0)),
            "precision": float(precision_score(labels, flagged, zero_division=0)),
            "recall": float(recall_score(labels, flagged, zero_division=0))}


def train_candidate(ctx: StepContext, kind: str, model: Any, params: dict[str, Any]) -> dict[str, Any]:
    part = ctx.partition
    train = part.read_table("train.parquet", "extract_features", LABELLED)
    holdout = part.read_table("holdout.parquet", "extract_features", LABELLED)
    if train[LABEL].nunique() < 2:
        raise DataError(f"{part.where('train.parquet')}: every customer has {LABEL}={train[LABEL].iloc[0]:g}; "
                        "a classifier needs both outcomes")
    from ml_jobs import tracking

    tracker = tracking.connect(ctx)  # before fitting: an unreachable MLflow fails in seconds
    x = train[list(FEATURES)]
    model.fit(x, train[LABEL])
    metrics = classification_metrics(holdout[LABEL], model.predict_proba(holdout[list(FEATURES)])[:, 1])
    with tracker.run() as run:
        tracking.mlflow.log_params({**params, "kind": kind, "train_rows": len(train), "run_date": ctx.run_date})
        tracking.mlflow.set_tag("esteira.model_kind", kind)
        model_info = tracking.log_classifier(model, x.head(50))
        tracking.mlflow.log_metrics({**metrics, "holdout_rows": float(len(holdout)),
                                     "churn_rate": float(train[LABEL].mean())}, model_id=model_info["model_id"])
    log(f"train_{kind}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()) + f"; MLflow run {run.info.run_id}")
    return {"kind": kind, "mlflow_run_id": run.info.run_id, **model_info, **metrics}
