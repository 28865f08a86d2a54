"""churn step 2b: histogram gradient boosting (the flexible candidate: interactions, thresholds)."""

from __future__ import annotations

from typing import Any

from ml_jobs.churn.training import train_candidate
from ml_jobs.runtime import StepContext, run_step


def train(ctx: StepContext) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    params = {"max_iter": 100, "learning_rate": 0.05, "max_leaf_nodes": 15, "class_weight": "balanced",
              "random_state": 7}
    return train_candidate(ctx, "gbm", HistGradientBoostingClassifier(**params), params)


def main() -> None:
    run_step("train_gbm", train)


if __name__ == "__main__":
    main()
