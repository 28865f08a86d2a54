"""recsys step 4: recommend the top vehicles to every active user with the champion model.

Loads the champion as of the run's RUN_DATE (ml_jobs.registry: never a model promoted for a
later date, so a backfill or a re-run scores as the date's first run did), resolved once to
its version, which every prediction names; scores today's candidate pairs and writes the top
TOP_K per user.
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
    champion_from = (champion.tags or {}).get("esteira.champion_from", "")
    log(f"score: the champion of {name} as of {ctx.run_date} is version {champion.version} (from {champion_from})")
    scores = scorer(candidates)
    ranked = (candidates[["user_id", "vehicle_id"]].assign(score=scores)
              .sort_values(["user_id", "score", "vehicle_id"], ascending=[True, False, True]))
    ranked["rank"] = ranked.groupby("user_id").cumcount() + 1
    top = ranked[ranked["rank"] <= TOP_K].assign(model_version=str(champion.version), run_date=ctx.run_date)
    ctx.partition.write_table("recommendations.parquet", top.reset_index(drop=True))
    log(f"score: {top['user_id'].nunique()} users, top {TOP_K} vehicles each")
    return {"model_version": str(champion.version), "model_uri": f"models:/{name}/{champion.version}",
            "as_of": ctx.run_date, "champion_from": champion_from,
            "users": int(top["user_id"].nunique()), "rows": len(top), "output": "recommendations.parquet"}


def main() -> None:
    run_step("score", score)


if __name__ == "__main__":
    main()
