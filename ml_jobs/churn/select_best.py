"""churn step 3: pick the better candidate, register it, and gate it against the champion.

Candidates are compared on the held-out customers' ROC AUC as MLflow recorded it (then F1;
a full tie goes to the simpler model). A candidate without the metric cannot win. The winner
becomes a new version with the `challenger` alias; the champion as of the run date is scored
on the same held-out customers and replaced only if the challenger beats it (ml_jobs.registry).
"""

from __future__ import annotations

import math
from typing import Any

from ml_jobs.churn import CANDIDATES, GATE_METRIC
from ml_jobs.churn.features import LABEL, LABELLED
from ml_jobs.errors import DataError
from ml_jobs.runtime import StepContext, log, run_step


def _score(metrics: dict[str, float], name: str) -> float:
    value = metrics.get(name)
    return -math.inf if value is None or math.isnan(value) else value


def select_best(ctx: StepContext) -> dict[str, Any]:
    part = ctx.partition
    holdout = part.read_table("holdout.parquet", "extract_features", LABELLED)
    markers = {kind: part.read_json(f"train_{kind}.json", f"train_{kind}") for kind in CANDIDATES}
    from ml_jobs import registry, tracking
    from ml_jobs.churn.training import classification_metrics

    tracker = tracking.connect(ctx)
    recorded = {kind: dict(tracker.client.get_run(m["mlflow_run_id"]).data.metrics) for kind, m in markers.items()}
    valid = [k for k in CANDIDATES if _score(recorded[k], GATE_METRIC) > -math.inf]
    if not valid:
        raise DataError(f"no candidate recorded {GATE_METRIC} (held-out customers of one class?): nothing to register")
    best = max(valid, key=lambda k: (_score(recorded[k], GATE_METRIC), _score(recorded[k], "f1"),
                                     -CANDIDATES.index(k)))
    log("select_best: " + ", ".join(f"{k} {GATE_METRIC}={recorded[k].get(GATE_METRIC, float('nan')):.4f}"
                                    for k in CANDIDATES) + f" -> {best}")
    value = recorded[best][GATE_METRIC]
    version = registry.register(
        tracker.client, tracker.model_name, markers[best]["model_uri"], metric=GATE_METRIC,
        tags={**ctx.tags(), "esteira.model_kind": best, f"esteira.metric.{GATE_METRIC}": repr(value)},
        description=f"churn {best} trained for {ctx.day}; {GATE_METRIC}={value:.4f} on held-out customers")

    def evaluate(uri: str) -> float:
        scores = tracking.load_scorer(uri)(holdout)
        return classification_metrics(holdout[LABEL], scores)[GATE_METRIC]

    outcome = registry.challenge(tracker.client, tracker.model_name, version.version, run_date=ctx.run_date,
                                 run_id=ctx.run_id, metric=GATE_METRIC, challenger_value=value, evaluate=evaluate)
    return {"best": best, "candidates": {k: recorded[k].get(GATE_METRIC) for k in CANDIDATES}, **outcome}


def main() -> None:
    run_step("select_best", select_best)


if __name__ == "__main__":
    main()
