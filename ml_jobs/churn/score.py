"""churn step 4: the churn probability of every active customer, from the champion model.

Loads the champion as of the run's RUN_DATE (ml_jobs.registry: never a model promoted for a
later date, so a backfill or a re-run scores as the date's first run did), resolved once to
its version, which every row names, and flags customers at or above the at-risk threshold for
the CRM team.
"""

from __future__ import annotations

from typing import Any

from ml_jobs.churn import AT_RISK
from ml_jobs.churn.features import SCHEMA
from ml_jobs.runtime import StepContext, log, run_step


def score(ctx: StepContext) -> dict[str, Any]:
    customers = ctx.partition.read_table("customers.parquet", "extract_features", SCHEMA)
    from ml_jobs import tracking

    champion, scorer = tracking.champion_scorer(ctx, made_by="select_best")
    name = champion.name
    kind = (champion.tags or {}).get("esteira.model_kind", "unknown")
    champion_from = (champion.tags or {}).get("esteira.champion_from", "")
    log(f"score: the champion of {name} as of {ctx.run_date} is version {champion.version} ({kind}, "
        f"from {champion_from})")
    probability = scorer(customers)
    predictions = customers[["user_id"]].assign(churn_probability=probability, at_risk=probability >= AT_RISK,
                                                model_version=str(champion.version), run_date=ctx.run_date)
    ctx.partition.write_table("predictions.parquet", predictions)
    at_risk = int(predictions["at_risk"].sum())
    log(f"score: {len(predictions)} customers, {at_risk} at risk")
    return {"model": kind, "model_version": str(champion.version), "model_uri": f"models:/{name}/{champion.version}",
            "as_of": ctx.run_date, "champion_from": champion_from,
            "customers": len(predictions), "at_risk": at_risk, "output": "predictions.parquet"}


def main() -> None:
    run_step("score", score)


if __name__ == "__main__":
    main()
