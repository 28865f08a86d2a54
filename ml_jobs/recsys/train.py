"""recsys step 2: fit the recommender on the date's training pairs and log it to MLflow.

A histogram gradient-boosting classifier estimates P(user rents vehicle); ranking a user's
vehicles by it is the recommendation. The model is logged with its signature and an input
example; registration waits for evaluate_and_register, which judges it on held-out users.
"""

from __future__ import annotations

from typing import Any

from ml_jobs.errors import DataError
from ml_jobs.recsys.features import FEATURES, LABEL, LABELLED
from ml_jobs.runtime import StepContext, int_setting, log, run_step


def train(ctx: StepContext) -> dict[str, Any]:
    frame = ctx.partition.read_table("train.parquet", "extract_features", LABELLED)
    labels = frame[LABEL]
    if labels.nunique() < 2:
        raise DataError(f"{ctx.partition.where('train.parquet')}: the label {LABEL} has a single value; "
                        "a classifier needs both rented and not rented pairs")
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss, roc_auc_score

    from ml_jobs import tracking

    tracker = tracking.connect(ctx)  # before fitting: an unreachable MLflow fails in seconds
    params = {"max_iter": int_setting("APP_MAX_ITER", 120), "learning_rate": 0.08, "max_leaf_nodes": 31,
              "l2_regularization": 1.0, "random_state": 7}
    model = HistGradientBoostingClassifier(**params)
    x = frame[list(FEATURES)]
    model.fit(x, labels)
    fitted = model.predict_proba(x)[:, 1]
    with tracker.run() as run:
        tracking.mlflow.log_params({**params, "model": "HistGradientBoostingClassifier", "features": len(FEATURES),
                                    "train_rows": len(frame), "run_date": ctx.run_date})
        tracking.mlflow.log_metrics({"train_roc_auc": float(roc_auc_score(labels, fitted)),
                                     "train_log_loss": float(log_loss(labels, fitted)),
                                     "train_positive_rate": float(labels.mean())})
        model_info = tracking.log_classifier(model, x.head(50))
    log(f"train: MLflow run {run.info.run_id}, model {model_info['model_uri']}")
    return {"mlflow_run_id": run.info.run_id, **model_info, "train_rows": len(frame)}


def main() -> None:
    run_step("train", train)


if __name__ == "__main__":
    main()
