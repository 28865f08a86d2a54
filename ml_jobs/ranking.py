"""Ranking metrics for recommendations: NDCG@k, MAP@k and recall@k over users.

Each user's candidates are ranked by score (ties broken by item id, so results never depend
on row order); relevance is binary (the user rented the vehicle in the label window). Users
with nothing relevant are left out: every ranking of them is equally right.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def ranking_metrics(frame: pd.DataFrame, *, score: str, relevant: str, user: str = "user_id",
                    item: str = "vehicle_id", k: int = 5) -> dict[str, float]:
    ranked = frame[[user, item, score, relevant]].sort_values([user, score, item], ascending=[True, False, True])
    ranked["rank"] = ranked.groupby(user, sort=False).cumcount()
    rel = (ranked[relevant].to_numpy() > 0).astype(float)
    ranked["rel"] = rel
    ranked["hits_so_far"] = ranked.groupby(user, sort=False)["rel"].cumsum()
    top = ranked[ranked["rank"] < k]
    per_user = pd.DataFrame({"n_rel": ranked.groupby(user)["rel"].sum()})
    per_user = per_user[per_user["n_rel"] > 0]
    if per_user.empty:
        return {f"ndcg_at_{k}": float("nan"), f"map_at_{k}": float("nan"), f"recall_at_{k}": float("nan"),
                "eval_users": 0.0}
    gains = top["rel"] / np.log2(top["rank"] + 2.0)
    dcg = gains.groupby(top[user]).sum().reindex(per_user.index, fill_value=0.0)
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal = np.cumsum(discounts)[np.minimum(per_user["n_rel"].to_numpy(), k).astype(int) - 1]
    precision_at_hit = top["rel"] * top["hits_so_far"] / (top["rank"] + 1.0)
    ap = precision_at_hit.groupby(top[user]).sum().reindex(per_user.index, fill_value=0.0)
    ap = ap / np.minimum(per_user["n_rel"], k)
    hits = top["rel"].groupby(top[user]).sum().reindex(per_user.index, fill_value=0.0)
    return {f"ndcg_at_{k}": float(np.mean(dcg.to_numpy() / ideal)),
            f"map_at_{k}": float(ap.mean()),
            f"recall_at_{k}": float((hits / per_user["n_rel"]).mean()),
            "eval_users": float(len(per_user))}
