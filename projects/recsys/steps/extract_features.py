"""Sample step: build a day's user x vehicle features, deterministic in the run date."""

import csv
import os
import random
import time

from _common import partition, record

started = time.time_ns()
rng = random.Random(os.environ["RUN_DATE"][:10])
rows = [{"user": f"u{u}", "vehicle": f"v{v}", "rentals": rng.randint(0, 5),
         "days_since_last": rng.randint(1, 365)} for u in range(50) for v in range(20)]
with open(partition() / "features.csv", "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
record("extract_features", started, rows=len(rows))
