"""churn: which customers stop renting.

extract_features -> (train_logreg, train_gbm) -> select_best -> score. Two candidate
classifiers train in parallel on the same features and are judged on the same held-out
customers (ROC AUC, F1); the better one is registered and gated against the champion.
"""

GATE_METRIC = "roc_auc"
CANDIDATES = ("logreg", "gbm")  # train_<kind> steps; ties go to the first (the simpler model)
AT_RISK = 0.5  # probability from which a customer is flagged at risk
