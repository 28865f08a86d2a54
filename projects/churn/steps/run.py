"""Sample churn steps (stand-ins for ml_jobs/ until it exists): `python steps/run.py <step>`.

Each step reads what its upstream steps wrote in the run's partition and records its own
output, so a run's files show the order the steps ran in and the environment they saw.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

STARTED = time.time_ns()


def partition() -> Path:
    path = Path(os.environ["DATA_ROOT"]) / os.environ["MLFLOW_EXPERIMENT_NAME"] / os.environ["RUN_DATE"][:10]
    path.mkdir(parents=True, exist_ok=True)
    return path


def read(step: str) -> dict:
    return json.loads((partition() / f"{step}.json").read_text())


def write(step: str, **outputs: object) -> None:
    env = {k: v for k, v in sorted(os.environ.items())
           if k in ("ENV", "RUN_DATE", "RUN_ID", "DATA_ROOT") or k.startswith(("MLFLOW_", "APP_"))}
    body = {"step": step, "started_ns": STARTED, "finished_ns": time.time_ns(), "env": env, **outputs}
    (partition() / f"{step}.json").write_text(json.dumps(body, indent=2))
    print(f"{step}: done")


def extract_features() -> None:
    rng = random.Random(os.environ["RUN_DATE"][:10])
    write("extract_features", customers=[rng.random() for _ in range(100)])


def train(kind: str) -> None:
    customers = read("extract_features")["customers"]
    # a stand-in score: how well a threshold separates the synthetic customers
    threshold = 0.5 if kind == "logreg" else 0.45
    auc = sum(1 for c in customers if (c > threshold) == (c > 0.5)) / len(customers)
    write(f"train_{kind}", roc_auc=auc)


def select_best() -> None:
    candidates = {k: read(f"train_{k}")["roc_auc"] for k in ("logreg", "gbm")}
    write("select_best", best=max(candidates, key=candidates.__getitem__), candidates=candidates)


def score() -> None:
    best = read("select_best")["best"]
    customers = read("extract_features")["customers"]
    write("score", model=best, churners=sum(c > 0.5 for c in customers))


STEPS = {"extract_features": extract_features, "train_logreg": lambda: train("logreg"),
         "train_gbm": lambda: train("gbm"), "select_best": select_best, "score": score}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in STEPS:
        sys.exit(f"usage: python steps/run.py {{{'|'.join(STEPS)}}}")
    STEPS[sys.argv[1]]()
