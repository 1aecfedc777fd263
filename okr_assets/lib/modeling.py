"""Train and evaluate the at-risk model: will a key result end its cycle with score >= 0.7?

Pure scikit-learn (imported inside functions: it costs seconds and only the ML steps need it).
The split is by time, never random: the most recent closed cycle is the holdout, every earlier
closed cycle is training data. Two candidates are compared on the holdout — a regularised logistic
regression (calibrated by construction) and gradient boosting wrapped in sigmoid calibration —
and the one with the better ROC-AUC is kept (Brier score breaks ties).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from okr_assets.lib.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES

RANDOM_STATE = 17
# Closed, labelled cycles needed to train: at least one to train on and the latest as holdout.
MIN_TRAINING_CYCLES = 2


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame
    train_cycles: list[str]
    holdout_cycle: str


@dataclass
class TrainResult:
    name: str
    model: Any
    metrics: dict[str, float]
    per_week: pd.DataFrame
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)


def time_split(features: pd.DataFrame) -> Split:
    """Holdout = the latest closed cycle (by cycle start); train = all earlier closed cycles."""
    closed = features[features["cycle_closed"].astype(bool) & features["label"].notna()]
    order = (closed.groupby("cycle_id")["cycle_quarter"].min().sort_values().index.tolist())
    if len(order) < MIN_TRAINING_CYCLES:
        raise ValueError(f"need at least {MIN_TRAINING_CYCLES} closed cycles to train with a time-based holdout, "
                         f"found {len(order)}: {order}")
    holdout_cycle = order[-1]
    return Split(train=closed[closed["cycle_id"].isin(order[:-1])].reset_index(drop=True),
                 holdout=closed[closed["cycle_id"] == holdout_cycle].reset_index(drop=True),
                 train_cycles=order[:-1], holdout_cycle=holdout_cycle)


def _preprocessor() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer([
        ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
    ])


def candidates() -> dict[str, Any]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return {
        "logistic_regression": Pipeline([
            ("prep", _preprocessor()), ("clf", LogisticRegression(C=1.0, max_iter=2000))]),
        "gradient_boosting": Pipeline([
            ("prep", _preprocessor()),
            ("clf", CalibratedClassifierCV(
                HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                               random_state=RANDOM_STATE),
                method="sigmoid", cv=3))]),
    }


def evaluate(model: Any, frame: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
    """ROC-AUC, Brier score and log loss overall and per as-of week (with calibration gap)."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = frame["label"].astype(bool).to_numpy()
    p = model.predict_proba(frame[list(FEATURE_COLUMNS)])[:, 1]

    def scores(yy: np.ndarray, pp: np.ndarray) -> dict[str, float]:
        both = len(set(yy)) == 2
        return {"roc_auc": float(roc_auc_score(yy, pp)) if both else float("nan"),
                "brier": float(brier_score_loss(yy, pp)),
                "log_loss": float(log_loss(yy, np.clip(pp, 1e-6, 1 - 1e-6), labels=[False, True])),
                "calibration_gap": float(pp.mean() - yy.mean()), "rows": float(len(yy))}

    per_week = pd.DataFrame([
        {"week": int(w), **scores(y[idx], p[idx])}
        for w, idx in frame.groupby("week").indices.items()
    ]).sort_values("week")
    return scores(y, p), per_week


def train_and_select(split: Split) -> TrainResult:
    X, y = split.train[list(FEATURE_COLUMNS)], split.train["label"].astype(bool)
    results: dict[str, tuple[Any, dict[str, float], pd.DataFrame]] = {}
    for name, pipeline in candidates().items():
        pipeline.fit(X, y)
        metrics, per_week = evaluate(pipeline, split.holdout)
        results[name] = (pipeline, metrics, per_week)
    best = max(results, key=lambda n: (np.nan_to_num(results[n][1]["roc_auc"], nan=-1),
                                       -results[n][1]["brier"]))
    model, metrics, per_week = results[best]
    return TrainResult(name=best, model=model, metrics=metrics, per_week=per_week,
                       candidates={n: r[1] for n, r in results.items()})


def realised_performance(log: pd.DataFrame, outcomes: pd.DataFrame, pooled: bool = False) -> pd.DataFrame:
    """Quality of served predictions once their cycles closed, per (model_version, week); with
    ``pooled``, per model_version over all its weeks together (no week column).

    ``log``: key_result_id, cycle_id, week, risk, model_version, predicted_at, holdout_roc_auc, one
    row per served prediction; of a version's predictions for the same key result, cycle and week
    the latest counts (pooled too: each week a key result was scored at is one sample).
    ``outcomes``: key_result_id, cycle_id, reached_target for closed cycles.
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score

    keys = ["model_version"] if pooled else ["model_version", "week"]
    columns = [*keys, "predictions", "realised_roc_auc", "realised_brier", "holdout_roc_auc"]
    served = log.sort_values("predicted_at").drop_duplicates(
        ["key_result_id", "cycle_id", "week", "model_version"], keep="last")
    joined = served.merge(outcomes.dropna(subset=["reached_target"]), on=["key_result_id", "cycle_id"])
    rows = []
    for key, group in joined.groupby(keys):
        y = group["reached_target"].astype(bool).to_numpy()
        p = 1.0 - group["risk"].to_numpy(float)
        rows.append({"model_version": key[0], **({} if pooled else {"week": float(key[1])}),
                     "predictions": len(group),
                     "realised_roc_auc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else np.nan,
                     "realised_brier": float(brier_score_loss(y, p)),
                     "holdout_roc_auc": float(group["holdout_roc_auc"].iloc[0])})
    return pd.DataFrame(rows, columns=columns)
