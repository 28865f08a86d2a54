"""recsys step 4: recommend the top vehicles to every active user with the champion model.

Loads `models:/recsys@champion` (resolved once to its version, which every prediction
names), scores today's candidate pairs and writes the top TOP_K per user.
"""

from __future__ import annotations

from typing import Any

from ml_jobs.recsys import TOP_K
from ml_jobs.recsys.features import SCHEMA
from ml_jobs.runtime import StepContext, log, run_step


def score(ctx: StepContext) -> dict[str, Any]:
    candidates = ctx.partition.read_table("candidates.parquet", "extract_features", SCHEMA)
    from ml_jobs import tracking

    champion, scorer = tracking.champion_scorer(ctx, made_by="evaluate_and_register")
    name = champion.name
    log(f"score: models:/{name}@champion is version {champion.version}")
    scores = scorer(candidates)
    ranked = (candidates[["user_id", "vehicle_id"]].assign(score=scores)
              .sort_values(["user_id", "score", "vehicle_id"], ascending=[True, False, True]))
    ranked["rank"] = ranked.groupby("user_id").cumcount() + 1
    top = ranked[ranked["rank"] <= TOP_K].assign(model_version=str(champion.version), run_date=ctx.run_date)
    ctx.partition.write_table("recommendations.parquet", top.reset_index(drop=True))
    log(f"score: {top['user_id'].nunique()} users, top {TOP_K} vehicles each")
    return {"model_version": str(champion.version), "model_uri": f"models:/{name}@champion",
            "users": int(top["user_id"].nunique()), "rows": len(top), "output": "recommendations.parquet"}


def main() -> None:
    run_step("score", score)


if __name__ == "__main__":
    main()
