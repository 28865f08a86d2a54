"""What every sample step shares: where its run's partition is, and a record of the run.

Sample steps stand in for the ML jobs (ml_jobs/) until those exist; they are real programs
that read the environment esteira injects and write files a test can read.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

INJECTED = ("ENV", "RUN_DATE", "RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL",
            "MLFLOW_EXPERIMENT_NAME", "DATA_ROOT")


def partition() -> Path:
    """DATA_ROOT/<project>/<run date>: a re-run of one date rewrites that date only."""
    root = Path(os.environ["DATA_ROOT"])
    day = os.environ["RUN_DATE"][:10]
    path = root / os.environ["MLFLOW_EXPERIMENT_NAME"] / day
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(step: str, started_ns: int, **outputs: object) -> None:
    env = {k: os.environ[k] for k in sorted(os.environ) if k in INJECTED or k.startswith("APP_")}
    body = {"step": step, "started_ns": started_ns, "finished_ns": time.time_ns(),
            "env": env, **outputs}
    (partition() / f"{step}.json").write_text(json.dumps(body, indent=2))
    print(f"{step}: wrote {partition() / (step + '.json')}")
