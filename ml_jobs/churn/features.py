"""Customer features for churn, from the rentals before a cutoff day.

One row per customer active in the window (at least one rental): recency, frequency,
spend, the trend of the last 30 days against the rest, support tickets, tenure. A customer
has churned when they rent nothing in the `label_days` after the cutoff: the only definition
the business can observe.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from ml_jobs.storage import Kind
from ml_jobs.synthetic import CATEGORIES, World, rentals

FEATURES: tuple[str, ...] = (
    "tenure_days", "recency_days", "rentals", "rentals_last_30d", "rental_trend", "amount",
    "avg_duration_days", "distinct_categories", "tickets", "ticket_rate",
)
LABEL = "churned"
SCHEMA: dict[str, Kind] = {"user_id": "text", **dict.fromkeys(FEATURES, "number")}
LABELLED: dict[str, Kind] = {**SCHEMA, LABEL: "number"}


def customer_features(w: World, cutoff: date, window_days: int, label_days: int | None) -> pd.DataFrame:
    history = rentals(w, cutoff - timedelta(window_days), cutoff)
    users = np.unique(history["user"].to_numpy())
    if len(users) == 0:
        return pd.DataFrame(columns=list(LABELLED if label_days else SCHEMA))
    pos = np.searchsorted(users, history["user"].to_numpy())
    day = history["day"].to_numpy()
    c = cutoff.toordinal()
    n = np.bincount(pos, minlength=len(users)).astype(float)
    recent = np.bincount(pos, weights=(day >= c - 30).astype(float), minlength=len(users))
    last = np.full(len(users), -1)
    np.maximum.at(last, pos, day)
    cat = pd.Categorical(w.vehicles["category"], categories=CATEGORIES).codes.astype(int)[history["vehicle"].to_numpy()]
    seen = np.zeros((len(users), len(CATEGORIES)), dtype=bool)
    seen[pos, cat] = True
    tickets = np.bincount(pos, weights=history["ticket"].to_numpy().astype(float), minlength=len(users))
    older_days = max(window_days - 30, 1)
    frame = pd.DataFrame({
        "user_id": w.users["user_id"].to_numpy()[users],
        "tenure_days": (c - w.users["signup_day"].to_numpy()[users]).astype(float),
        "recency_days": (c - last).astype(float),
        "rentals": n,
        "rentals_last_30d": recent,
        # rentals per day lately vs before: < 1 means slowing down
        "rental_trend": (recent / 30.0 + 0.01) / ((n - recent) / older_days + 0.01),
        "amount": np.bincount(pos, weights=history["amount"].to_numpy(), minlength=len(users)),
        "avg_duration_days": np.bincount(pos, weights=history["duration_days"].to_numpy(), minlength=len(users)) / n,
        "distinct_categories": seen.sum(axis=1).astype(float),
        "tickets": tickets,
        "ticket_rate": tickets / n,
    })
    if label_days:
        future = rentals(w, cutoff, cutoff + timedelta(label_days))
        frame[LABEL] = (~np.isin(users, future["user"].to_numpy())).astype(float)
    return frame
