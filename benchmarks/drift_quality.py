"""How often the production drift detector cries wolf, and how often it catches real shifts.

Reference and current samples (both of size n) are drawn with replacement from the generator's
feature distribution (the week-6 rows of a generated features table), and
``okr_assets.lib.drift.detect_drift`` — the code okr_drift_report runs — decides. One JSON line:

    python -m benchmarks.drift_quality
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import numpy as np
import pandas as pd

from okr_assets.lib.curation import curate_frame
from okr_assets.lib.drift import detect_drift
from okr_assets.lib.features import CATEGORICAL_FEATURES, DRIFT_NUMERIC_FEATURES, build_features
from okr_assets.lib.generator import GeneratorConfig, generate
from okr_assets.lib.validation import validate_versions

TRIALS = 200
SEED = 7
WEEK = 6
SHIFTED = "progress"
CATEGORY, LEVEL = "okr_kind", "aspirational"


def feature_pool() -> pd.DataFrame:
    as_of = dt.datetime(2026, 11, 15, tzinfo=dt.UTC)
    data = generate(GeneratorConfig(seed=SEED, teams=40, cycles=6, as_of=as_of))
    raw = pd.concat(data.files.values(), ignore_index=True)
    raw = raw.assign(raw_id=range(1, len(raw) + 1), source="file", source_ref="bench",
                     ingested_at=pd.Timestamp(as_of), partition_date=pd.Timestamp(as_of.date()))
    processed = validate_versions(raw, dt.date(2024, 1, 1)).accepted
    features = build_features(processed, curate_frame(processed, as_of.date()), as_of)
    return features[features["week"] == WEEK].reset_index(drop=True)


def _draw(pool: pd.DataFrame, n: int, rng: np.random.Generator, weights: np.ndarray | None = None) -> pd.DataFrame:
    return pool.iloc[rng.choice(len(pool), size=n, replace=True, p=weights)].reset_index(drop=True)


def _category_weights(pool: pd.DataFrame, points: float) -> np.ndarray:
    """Row weights that raise ``LEVEL``'s share of ``CATEGORY`` by ``points`` (0.10 = 10 points)."""
    is_level = (pool[CATEGORY] == LEVEL).to_numpy()
    share = is_level.mean()
    target = min(share + points, 0.99)
    weights = np.where(is_level, target / is_level.sum(), (1 - target) / (~is_level).sum())
    return weights / weights.sum()


def _rate(pool: pd.DataFrame, n: int, rng: np.random.Generator, shift_sd: float = 0.0,
          category_points: float = 0.0) -> tuple[float, float]:
    """(share of trials flagged by detect_drift, share flagged by a naive raw KS p < 0.05 on SHIFTED)."""
    numeric, categorical = list(DRIFT_NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)
    sd = float(pool[SHIFTED].std())
    weights = _category_weights(pool, category_points) if category_points else None
    flagged = naive = 0
    for _ in range(TRIALS):
        reference = _draw(pool, n, rng)
        current = _draw(pool, n, rng, weights)
        if shift_sd:
            current[SHIFTED] = current[SHIFTED] + shift_sd * sd
        verdict = detect_drift(reference, current, numeric, categorical)
        flagged += verdict.drift_detected
        naive += bool(verdict.report.set_index("feature").loc[SHIFTED, "p_value"] < 0.05)
    return flagged / TRIALS, naive / TRIALS


def main() -> dict[str, object]:
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    pool = feature_pool()
    false_alarm = {str(n): _rate(pool, n, rng)[0] for n in (1_000, 10_000, 100_000)}
    tiny, naive_tiny = _rate(pool, 100_000, rng, shift_sd=0.05)
    false_alarm["tiny_shift_0.05sd@100000"] = tiny
    detection = {
        "mean_shift_0.5sd": {str(n): _rate(pool, n, rng, shift_sd=0.5)[0] for n in (1_000, 10_000)},
        "category_share_10pt": {str(n): _rate(pool, n, rng, category_points=0.10)[0] for n in (1_000, 10_000)},
    }
    met = all(v <= 0.05 for v in false_alarm.values()) and all(
        v >= 0.95 for rates in detection.values() for v in rates.values())
    return {
        "name": "drift_quality", "trials": TRIALS, "pool_rows": len(pool), "week": WEEK,
        "false_alarm_rate": false_alarm, "naive_ks_flag_rate_tiny_shift@100000": naive_tiny,
        "detection_rate": detection,
        "targets": ["false alarm <= 5% at every n", "detection >= 95%"], "met": met,
        "cpu_count": os.cpu_count(), "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
