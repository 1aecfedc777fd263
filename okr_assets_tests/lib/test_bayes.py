"""Reference probabilities: bounded, calibrated, sharp at the end, beaten by the oracle, point-in-time."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from okr_assets.lib.bayes import PRIOR_VAR, _continuous_bayes, observed_checkins, reference_probabilities
from okr_assets.lib.curation import curate_frame
from okr_assets.lib.features import build_features
from okr_assets.lib.generator import SIGMA, GeneratedData, GeneratorConfig, generate

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)
MID_CYCLE_WEEK = 7
KEYS = ["key_result_id", "cycle_id", "week"]


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    return generate(GeneratorConfig(seed=21, teams=8, cycles=5, as_of=NOW))


@pytest.fixture(scope="module")
def processed(data: GeneratedData) -> pd.DataFrame:
    return observed_checkins(data)


@pytest.fixture(scope="module")
def features(processed: pd.DataFrame) -> pd.DataFrame:
    return build_features(processed, curate_frame(processed, NOW.date()), NOW)


@pytest.fixture(scope="module")
def scored(data: GeneratedData, processed: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    ref = reference_probabilities(data, features, checkins=processed)
    return features.merge(ref, on=KEYS, how="left", validate="1:1")


def _closed(scored: pd.DataFrame) -> pd.DataFrame:
    return scored[scored["cycle_closed"]]


def _auc(frame: pd.DataFrame, column: str) -> float:
    return float(roc_auc_score(frame["label"].astype(bool), frame[column]))


def test_probabilities_are_bounded_and_complete(scored: pd.DataFrame) -> None:
    probs = scored[["oracle_p", "bayes_p"]]
    assert probs.notna().all().all()
    assert ((probs >= 0) & (probs <= 1)).all().all()
    assert not scored["cycle_closed"].all()      # open-cycle rows are covered too


def test_oracle_ranks_at_least_as_well_as_bayes_at_mid_cycle(scored: pd.DataFrame) -> None:
    mid = _closed(scored)[lambda f: f["week"] == MID_CYCLE_WEEK]
    assert len(mid) > 200
    assert _auc(mid, "oracle_p") >= _auc(mid, "bayes_p") - 0.01
    assert _auc(mid, "bayes_p") > 0.7


def test_bayes_is_calibrated_on_average(scored: pd.DataFrame) -> None:
    closed = _closed(scored)
    assert abs(closed["bayes_p"].mean() - closed["label"].astype(float).mean()) < 0.05
    mid = closed[closed["week"] == MID_CYCLE_WEEK]
    assert abs(mid["bayes_p"].mean() - mid["label"].astype(float).mean()) < 0.05


def test_bayes_knows_the_outcome_by_the_last_week(scored: pd.DataFrame) -> None:
    closed = _closed(scored)
    last = closed[closed["week"] == closed.groupby("cycle_id")["week"].transform("max")]
    assert _auc(last, "bayes_p") > 0.9


def test_bayes_is_point_in_time(data: GeneratedData, processed: pd.DataFrame, features: pd.DataFrame,
                                scored: pd.DataFrame) -> None:
    closed = processed[processed["cycle_end"] < pd.Timestamp(NOW.date())]
    counts = closed.groupby("key_result_id").size()
    kinds = closed.drop_duplicates("key_result_id").set_index("key_result_id")["metric_kind"]
    many = counts[counts >= 6].index
    # one continuous and one coarse key result, so both code paths are covered
    krs = [kinds[many][kinds[many] == "numeric"].index[0], kinds[many][kinds[many] == "milestone"].index[0]]
    changed = processed.copy()
    cuts = {}
    for kr in krs:
        times = processed.loc[processed["key_result_id"] == kr, "checkin_at"].sort_values()
        cuts[kr] = times.iloc[3]
        later = (changed["key_result_id"] == kr) & (changed["checkin_at"] > cuts[kr])
        target = changed.loc[later, "target_value"]
        changed.loc[later, ["progress", "score", "value"]] = np.column_stack(
            [np.full(later.sum(), 1.0), np.full(later.sum(), 1.0), target])
        changed.loc[later, "confidence"] = 10
    again = features[KEYS].merge(reference_probabilities(data, features, checkins=changed), on=KEYS)
    for kr in krs:
        mine = scored["key_result_id"] == kr
        before = mine & (scored["as_of"] < cuts[kr])
        assert before.sum() >= 2
        pd.testing.assert_series_equal(scored.loc[before, "bayes_p"].reset_index(drop=True),
                                       again.loc[before.to_numpy(), "bayes_p"].reset_index(drop=True))
        after = mine & (scored["as_of"] > cuts[kr] + pd.Timedelta(weeks=3))
        assert (again.loc[after.to_numpy(), "bayes_p"].to_numpy() > 0.99).all()   # the rewrite is seen


def test_closed_form_matches_a_grid_posterior_over_mu() -> None:
    """The conjugate normal update equals integrating a fine grid posterior with Gaussian increments."""
    times = np.array([0.0, 0.9, 2.3, 3.1, 4.8, 6.0])
    progress = np.array([0.0, 0.02, 0.21, 0.24, 0.33, 0.47])
    prior_mean, t_last, thr = 0.062, 12.7, 0.7
    mu = prior_mean + math.sqrt(PRIOR_VAR) * np.linspace(-8, 8, 4001)
    log_post = norm.logpdf(mu, prior_mean, math.sqrt(PRIOR_VAR))
    for dt_w, dx in zip(np.diff(times), np.diff(progress), strict=True):
        log_post += norm.logpdf(dx, mu * dt_w, SIGMA * math.sqrt(dt_w))
    post = np.exp(log_post - log_post.max())
    tau = t_last - times[-1]
    grid = float(np.sum(post * norm.sf(thr, progress[-1] + mu * tau, SIGMA * math.sqrt(tau))) / post.sum())
    last = pd.DataFrame({"x_info": [progress[-1]], "s_info": [times[-1]], "prior_mean": [prior_mean],
                         "thr": [thr], "reached": [False]})
    closed = _continuous_bayes(last, np.array([[t_last]]), np.array([[1.0]]))[0]
    assert closed == pytest.approx(grid, abs=1e-6)
