"""User x vehicle features for the recommender, from the rentals before a cutoff day.

One row per (user, vehicle): what the user rented before (categories, exact vehicles,
prices), what the vehicle is and how popular it is. The label is whether the user rented
that vehicle in the days after the cutoff.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from ml_jobs.storage import Kind
from ml_jobs.synthetic import CATEGORIES, World, rentals

FEATURES: tuple[str, ...] = (
    "vehicle_price", "vehicle_seats", "vehicle_automatic", "vehicle_popularity",
    "user_rentals", "user_category_share", "user_vehicle_rentals", "user_avg_price",
    "price_ratio", "days_since_category",
)
LABEL = "rented"
KEYS: dict[str, Kind] = {"user_id": "text", "vehicle_id": "text"}
SCHEMA: dict[str, Kind] = {**KEYS, **dict.fromkeys(FEATURES, "number")}
LABELLED: dict[str, Kind] = {**SCHEMA, LABEL: "number"}


def pair_features(w: World, cutoff: date, window_days: int, label_days: int | None) -> pd.DataFrame:
    """Features at `cutoff` over the `window_days` before it (+ labels over `label_days` after).

    Only users with at least one rental in the window get rows: there is nothing to
    personalise for the others (they get the popular vehicles).
    """
    history = rentals(w, cutoff - timedelta(window_days), cutoff)
    users = np.unique(history["user"].to_numpy())
    if len(users) == 0:
        return pd.DataFrame(columns=list(LABELLED if label_days else SCHEMA))
    n_v = len(w.vehicles)
    pos = np.searchsorted(users, history["user"].to_numpy())
    vehicle = history["vehicle"].to_numpy()
    cat_of = pd.Categorical(w.vehicles["category"], categories=CATEGORIES).codes.astype(int)
    price = w.vehicles["daily_price"].to_numpy()

    per_vehicle = np.zeros((len(users), n_v))
    np.add.at(per_vehicle, (pos, vehicle), 1.0)
    per_cat = np.zeros((len(users), len(CATEGORIES)))
    np.add.at(per_cat, (pos, cat_of[vehicle]), 1.0)
    last_cat = np.full((len(users), len(CATEGORIES)), -1)
    np.maximum.at(last_cat, (pos, cat_of[vehicle]), history["day"].to_numpy())
    n_rentals = per_vehicle.sum(axis=1)
    avg_price = np.bincount(pos, weights=price[vehicle], minlength=len(users)) / n_rentals
    popularity = np.bincount(vehicle, minlength=n_v) / max(len(history), 1)
    since = np.where(last_cat >= 0, cutoff.toordinal() - last_cat, window_days).astype(float)

    grid_u = np.repeat(np.arange(len(users)), n_v)
    grid_v = np.tile(np.arange(n_v), len(users))
    frame = pd.DataFrame({
        "user_id": w.users["user_id"].to_numpy()[users][grid_u],
        "vehicle_id": w.vehicles["vehicle_id"].to_numpy()[grid_v],
        "vehicle_price": price[grid_v],
        "vehicle_seats": w.vehicles["seats"].to_numpy()[grid_v],
        "vehicle_automatic": w.vehicles["automatic"].to_numpy()[grid_v],
        "vehicle_popularity": popularity[grid_v],
        "user_rentals": n_rentals[grid_u],
        "user_category_share": (per_cat[grid_u, cat_of[grid_v]] + 0.5) / (n_rentals[grid_u] + 3.0),
        "user_vehicle_rentals": per_vehicle[grid_u, grid_v],
        "user_avg_price": avg_price[grid_u],
        "price_ratio": price[grid_v] / avg_price[grid_u],
        "days_since_category": since[grid_u, cat_of[grid_v]],
    })
    if label_days:
        future = rentals(w, cutoff, cutoff + timedelta(label_days))
        known = np.isin(future["user"].to_numpy(), users)
        rented = np.zeros((len(users), n_v))
        rented[np.searchsorted(users, future["user"].to_numpy()[known]), future["vehicle"].to_numpy()[known]] = 1.0
        frame[LABEL] = rented[grid_u, grid_v]
    return frame
