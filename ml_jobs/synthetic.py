"""A deterministic, synthetic car-rental business: users, vehicles and the rentals of each day.

Stands in for the company's tables (no downloads): the population (users, vehicles, tastes)
depends only on the seed, and the rentals of a day only on the seed and that day, so any
window of days is the same whichever run date reads it. A backfill of a date therefore
rebuilds exactly what the original run saw.

Behaviour the models can learn, as in the real business: each user prefers some vehicle
categories and dislikes expensive cars to a personal degree; users join over time, rent at
their own pace, slow down and open support tickets in the weeks before they leave for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd

CATEGORIES = ("economy", "compact", "sedan", "suv", "van", "luxury")
_BASE_PRICE = np.array([110.0, 140.0, 180.0, 240.0, 280.0, 450.0])  # per day
_SEATS = np.array([5, 5, 5, 7, 9, 5])
FIRST_SIGNUP = date(2025, 1, 1)
LAST_SIGNUP = date(2030, 12, 31)
_DECLINE_DAYS = 45  # users slow down over the weeks before they leave


@dataclass(frozen=True)
class World:
    """The population; arrays are indexed by user / vehicle position."""

    seed: int
    vehicles: pd.DataFrame  # vehicle_id, category, daily_price, seats, automatic
    users: pd.DataFrame  # user_id, signup_day, churn_day (ordinals), holdout
    utility: np.ndarray  # (users, vehicles): how much each user likes each vehicle
    rate: np.ndarray  # rentals per day while active
    ticket_base: np.ndarray  # chance a rental ends in a support ticket


@cache
def world(seed: int = 7, n_users: int = 6000, n_vehicles: int = 30) -> World:
    rng = np.random.default_rng([seed, 0])
    category = rng.integers(0, len(CATEGORIES), n_vehicles)
    price = np.round(_BASE_PRICE[category] * rng.lognormal(0.0, 0.12, n_vehicles), 2)
    vehicles = pd.DataFrame({
        "vehicle_id": [f"v{i:03d}" for i in range(n_vehicles)],
        "category": [CATEGORIES[c] for c in category],
        "daily_price": price,
        "seats": _SEATS[category].astype(float),
        "automatic": (rng.random(n_vehicles) < np.where(category >= 3, 0.9, 0.4)).astype(float),
    })
    first, last = FIRST_SIGNUP.toordinal(), LAST_SIGNUP.toordinal()
    signup = rng.integers(first, last, n_users)
    churn = signup + np.ceil(rng.exponential(300.0, n_users)).astype(int) + 14
    users = pd.DataFrame({
        "user_id": [f"u{i:05d}" for i in range(n_users)],
        "signup_day": signup,
        "churn_day": churn,
        "holdout": rng.random(n_users) < 0.25,  # the same users are held out on every date
    })
    taste = np.log(rng.dirichlet(np.full(len(CATEGORIES), 0.6), n_users) + 1e-3)
    sensitivity = rng.lognormal(0.0, 0.5, n_users)
    quality = rng.normal(0.0, 0.4, n_vehicles)
    utility = (taste[:, category] - sensitivity[:, None] * np.log(price / 150.0)[None, :]
               + quality[None, :])
    rate = rng.gamma(2.0, 1 / 30.0, n_users)  # mean one rental every 15 days
    ticket_base = rng.beta(1.0, 20.0, n_users)
    return World(seed, vehicles, users, utility, rate, ticket_base)


def rentals_of_day(w: World, day: date) -> pd.DataFrame:
    """The rentals that started on `day`: a function of the seed and the day only."""
    d = day.toordinal()
    rng = np.random.default_rng([w.seed, d])
    signup = w.users["signup_day"].to_numpy()
    churn = w.users["churn_day"].to_numpy()
    active = np.flatnonzero((signup <= d) & (d < churn))
    to_go = churn[active] - d
    decline = np.clip(to_go / _DECLINE_DAYS, 0.15, 1.0)
    weekend = 1.3 if day.weekday() >= 4 else 0.9
    counts = rng.poisson(w.rate[active] * decline * weekend)
    renters = np.repeat(active, counts)
    noise = rng.gumbel(size=(len(renters), w.utility.shape[1]))
    vehicle = np.argmax(w.utility[renters] + noise, axis=1)  # a choice by the user's taste
    duration = 1 + rng.poisson(2.0, len(renters))
    leaving = (churn[renters] - d) < 60
    ticket = rng.random(len(renters)) < np.where(leaving, 0.35, w.ticket_base[renters])
    return pd.DataFrame({
        "day": np.full(len(renters), d),
        "user": renters,
        "vehicle": vehicle,
        "duration_days": duration,
        "amount": w.vehicles["daily_price"].to_numpy()[vehicle] * duration,
        "ticket": ticket,
    })


def rentals(w: World, start: date, end: date) -> pd.DataFrame:
    """Rentals that started in [start, end)."""
    days = [rentals_of_day(w, start + timedelta(n)) for n in range((end - start).days)]
    return pd.concat(days, ignore_index=True) if days else rentals_of_day(w, start).iloc[:0]
