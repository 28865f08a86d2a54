"""Sample step: score the day's features (a popularity baseline) and keep the top 3 per user."""

import csv
import time
from collections import defaultdict

from _common import partition, record

started = time.time_ns()
scores: dict[str, list[tuple[float, str]]] = defaultdict(list)
with open(partition() / "features.csv", newline="") as fh:
    for row in csv.DictReader(fh):
        score = int(row["rentals"]) / (1 + int(row["days_since_last"]) / 30)
        scores[row["user"]].append((score, row["vehicle"]))
with open(partition() / "recommendations.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["user", "rank", "vehicle", "score"])
    for user in sorted(scores):
        for rank, (score, vehicle) in enumerate(sorted(scores[user], reverse=True)[:3], 1):
            writer.writerow([user, rank, vehicle, f"{score:.4f}"])
record("score_model", started, users=len(scores))
