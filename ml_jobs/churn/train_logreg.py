"""churn step 2a: logistic regression on standardised features (the simple, explainable candidate)."""

from __future__ import annotations

from typing import Any

from ml_jobs.churn.training import train_candidate
from ml_jobs.runtime import StepContext, run_step


def train(ctx: StepContext) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = {"C": 1.0, "class_weight": "balanced", "max_iter": 1000}
    return train_candidate(ctx, "logreg", make_pipeline(StandardScaler(), LogisticRegression(**params)), params)


def main() -> None:
    run_step("train_logreg", train)


if __name__ == "__main__":
    main()
