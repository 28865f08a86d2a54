"""recsys step 1: build the run date's training, held-out and scoring sets.

The partition is cleared first: a re-run or backfill of a date replaces that date's files
(and only them). Training pairs use the rentals before `run date - label window` with the
label window's rentals as targets; held-out users are never in training; candidates are
today's features for every active user, to be scored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ml_jobs.errors import DataError
from ml_jobs.recsys.features import LABEL, pair_features
from ml_jobs.runtime import StepContext, int_setting, log, run_step
from ml_jobs.synthetic import FIRST_SIGNUP, world


def extract(ctx: StepContext) -> dict[str, Any]:
    window = int_setting("APP_FEATURE_WINDOW_DAYS", 90)
    label_days = int_setting("APP_LABEL_WINDOW_DAYS", 14)
    w = world(int_setting("APP_DATA_SEED", 7, low=0))
    cutoff = ctx.day - timedelta(label_days)
    labelled = pair_features(w, cutoff, window, label_days)
    if labelled.empty or labelled[LABEL].sum() == 0:
        raise DataError(f"no rentals in the {window} days before {cutoff} (the business starts {FIRST_SIGNUP}): "
                        "nothing to learn from for this run date")
    held_out_users = set(w.users.loc[w.users["holdout"], "user_id"])
    in_holdout = labelled["user_id"].isin(held_out_users)
    train, holdout = labelled[~in_holdout], labelled[in_holdout]
    candidates = pair_features(w, ctx.day, window, None)
    part = ctx.partition
    part.clear()
    part.write_table("train.parquet", train)
    part.write_table("holdout.parquet", holdout)
    part.write_table("candidates.parquet", candidates)
    log(f"extract_features: {len(train)} training pairs, {len(holdout)} held-out pairs, "
        f"{len(candidates)} candidate pairs for {ctx.day}")
    return {"window_days": window, "label_days": label_days, "train_rows": len(train),
            "holdout_rows": len(holdout), "candidate_rows": len(candidates),
            "positive_rate": round(float(train[LABEL].mean()), 5)}


def main() -> None:
    run_step("extract_features", extract)


if __name__ == "__main__":
    main()
