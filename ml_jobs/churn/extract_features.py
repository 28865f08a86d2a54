"""churn step 1: build the run date's training, held-out and scoring sets of customers.

The partition is cleared first, so a re-run or backfill of a date replaces that date only.
Training customers are labelled by what they did in the label window before the run date;
held-out customers never train; `customers.parquet` is today's features, to be scored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ml_jobs.churn.features import LABEL, customer_features
from ml_jobs.errors import DataError
from ml_jobs.runtime import StepContext, int_setting, log, run_step
from ml_jobs.synthetic import FIRST_SIGNUP, world


def extract(ctx: StepContext) -> dict[str, Any]:
    window = int_setting("APP_FEATURE_WINDOW_DAYS", 90)
    label_days = int_setting("APP_LABEL_WINDOW_DAYS", 30)
    w = world(int_setting("APP_DATA_SEED", 7, low=0))
    cutoff = ctx.day - timedelta(label_days)
    labelled = customer_features(w, cutoff, window, label_days)
    if labelled.empty or labelled[LABEL].nunique() < 2:
        raise DataError(f"too few customers in the {window} days before {cutoff} (the business starts "
                        f"{FIRST_SIGNUP}) to learn churn for this run date")
    held_out = set(w.users.loc[w.users["holdout"], "user_id"])
    in_holdout = labelled["user_id"].isin(held_out)
    customers = customer_features(w, ctx.day, window, None)
    part = ctx.partition
    part.clear()
    part.write_table("train.parquet", labelled[~in_holdout])
    part.write_table("holdout.parquet", labelled[in_holdout])
    part.write_table("customers.parquet", customers)
    log(f"extract_features: {int((~in_holdout).sum())} training and {int(in_holdout.sum())} held-out customers, "
        f"{len(customers)} to score for {ctx.day}")
    return {"window_days": window, "label_days": label_days, "train_rows": int((~in_holdout).sum()),
            "holdout_rows": int(in_holdout.sum()), "customer_rows": len(customers),
            "churn_rate": round(float(labelled[LABEL].mean()), 5)}


def main() -> None:
    run_step("extract_features", extract)


if __name__ == "__main__":
    main()
