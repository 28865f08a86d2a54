"""recsys: vehicle recommendation (the seed's project).

extract_features -> train -> evaluate_and_register -> score. A gradient-boosted classifier
scores user x vehicle pairs; users get the vehicles with the highest scores. Judged by
ranking metrics (NDCG@5, MAP@5) on users it never trained on.
"""

GATE_METRIC = "ndcg_at_5"
TOP_K = 5
