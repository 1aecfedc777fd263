"""Reference probabilities for the at-risk model: an oracle and the Bayes-optimal predictor.

The synthetic generator (``okr_assets.lib.generator``) is a known model, so for every feature row
(key result, cycle, as-of week) two yardsticks for P(score >= 0.7 at the last check-in) exist:

``oracle_p``
    Knows the latent weekly drift ``mu`` and the true time of the last check-in ``T`` (both from
    the ground truth) and the check-ins seen by as-of. Brownian increments are independent, so
    for continuous metrics the state is the last observed progress ``x_s`` at time ``s``:
    ``1 - Phi((thr - x_s - mu*(T - s)) / (sigma*sqrt(T - s)))``, and ``1{score_s >= 0.7}`` once
    the last check-in has been seen. Boolean/milestone check-ins only bound the latent progress,
    so there the oracle filters them exactly like ``bayes_p`` below, with ``mu`` known.

``bayes_p``
    Uses only what is observable by as-of (the KR's own check-ins, its kind and metric, the
    calendar) plus the generator's priors; the best any model fed one KR's history can do.

    - Drift: prior ``N(BASE_DRIFT + KIND_EFFECT[kind], TEAM_EFFECT_SD**2 + DRIFT_NOISE_SD**2)``
      (the team effect is integrated out; other KRs of the team are *not* used, so a model that
      pools a team's KRs could in principle edge past it by a hair).
    - Continuous metrics (numeric/percent/currency): progress is observed exactly (to the export's
      2-decimal rounding, ignored). The Gaussian increment likelihood of a Brownian path with
      drift depends on ``mu`` only through ``(x_s, s)``, so the posterior is conjugate normal and
      the predictive of ``x_T`` is ``N(x_s + m*tau, sigma**2*tau + v*tau**2)`` with
      ``tau = T - s``: the exact limit of a grid posterior over ``mu``, without the grid.
    - Boolean/milestone metrics: a check-in only says that progress lies in an interval
      (``value = 1{x >= 0.7}`` or ``floor(clip(x, 0, 1)*N)``). These are filtered exactly on a
      grid over ``(mu, y)`` with ``y = x - mu*t`` (the driftless part, whose transition kernel
      does not depend on ``mu``), multiplying in the interval indicator and the likelihood of the
      reported confidence, which the generator derives from the latent progress
      (``round(5 + 8*(x - 0.9*elapsed) + N(0, 1))`` clipped to 0..10) and a model can exploit.
    - "Not started": a first check-in within a week that reports the start value may be the
      generator's placeholder (probability 1/2, and only when more check-ins follow). For
      continuous metrics it carries no information (the state stays ``x = 0`` at ``t = 0``); for
      coarse ones its likelihood is the mixture ``1/2 + 1/2*1{x in interval}``. Either way the
      KR cannot have stopped there.
    - Last check-in time ``T``: integrated over its posterior under the generator's schedule
      (stop = cycle end + U(0, 7) days, or with probability 0.1 a silent stop at U(0.3, 0.8) of
      that; lognormal gaps), given the last check-in time ``s`` and that no check-in arrived in
      ``(s, as_of]``. So a KR that has been quiet for long is likely to have stopped already, and
      its outcome is then its current score. The posterior is sampled with fixed stratified
      draws (256 per row, common to all rows), so results are deterministic and each row depends
      only on data up to its as-of time.

Pure numpy/pandas/scipy, no Dagster. About 2 s per 10k feature rows on one core.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from okr_assets.lib.contract import DEFAULT_TARGET_SCORE
from okr_assets.lib.generator import (
    BASE_DRIFT,
    DRIFT_NOISE_SD,
    FIRST_PARTITION,
    GAP_LOG_SD,
    GAP_MEDIAN_DAYS,
    KIND_EFFECT,
    SIGMA,
    SILENT_SHARE,
    TEAM_EFFECT_SD,
    GeneratedData,
)
from okr_assets.lib.validation import validate_versions

REFERENCE_COLUMNS: tuple[str, ...] = ("key_result_id", "cycle_id", "week", "oracle_p", "bayes_p")
KEYS: list[str] = ["key_result_id", "cycle_id"]
COARSE_METRICS: frozenset[str] = frozenset({"boolean", "milestone"})

# Generator facts that are literals in generator.py rather than named constants (keep in sync).
LATE_DAYS = 7.0                    # the last check-in may come up to 7 days after the cycle's last day
SILENT_STOP = (0.3, 0.8)           # a silent KR stops at this fraction of its planned span
NOT_STARTED_SHARE = 0.5            # early first check-ins reporting the start value
CONF_CENTER, CONF_SLOPE, CONF_PACE = 5.0, 8.0, 0.9   # confidence ~ round(5 + 8*(x - 0.9*elapsed) + N(0,1))
CONF_MAX = 10.0

PRIOR_VAR = TEAM_EFFECT_SD**2 + DRIFT_NOISE_SD**2
_LOG_GAP = math.log(GAP_MEDIAN_DAYS)
_DAY_SECONDS = 86400.0
_EPS_WEEKS = 1e-9

# Schedule posterior: samples per row (half regular stops, half silent ones), future gaps per sample.
_HALF_DRAWS = 128
_MAX_GAPS = 110                    # gaps are >= 1 day and a cycle is < 100 days
_CHUNK = 4096                      # rows per vectorised block (bounds memory at ~10 MB per array)

# (mu, y) grid for coarse metrics. y = sigma*W(t) has sd <= 0.085*sqrt(15) ~ 0.33, so +-1.7 is ~5 sd.
_MU_POINTS, _MU_SDS = 41, 5.0
_Y_STEP, _Y_HALF = 0.02, 1.7
_Y = np.arange(-_Y_HALF, _Y_HALF + _Y_STEP / 2, _Y_STEP)
_G = len(_Y)
_Y_LO, _Y_HI = _Y - _Y_STEP / 2, _Y + _Y_STEP / 2
_TOEPLITZ = np.arange(_G)[None, :] - np.arange(_G)[:, None] + _G - 1   # K[i, j] = k(j - i)
_OFFSETS = np.arange(-(_G - 1), _G) * _Y_STEP
_OBS_FIELDS = ["t", "lo", "hi", "use_conf", "conf", "elapsed", "ambiguous", "thr", "reached", "prior_mean"]
_T_GRID_POINTS = 8                 # P(reach | T) is smooth in T: interpolate it for coarse metrics


def observed_checkins(data: GeneratedData) -> pd.DataFrame:
    """What the pipeline accepts from ``data.files``: the newest valid version per check-in id."""
    raw = pd.concat(data.files.values(), ignore_index=True)
    now = pd.Timestamp(data.as_of)
    raw = raw.assign(raw_id=np.arange(1, len(raw) + 1), source="file", source_ref="generated",
                     ingested_at=now, partition_date=now.tz_convert(None).normalize())
    return validate_versions(raw, FIRST_PARTITION).accepted


def reference_probabilities(data: GeneratedData, features: pd.DataFrame,
                            checkins: pd.DataFrame | None = None) -> pd.DataFrame:
    """``oracle_p`` and ``bayes_p`` for every row of ``features`` (see the module docstring).

    ``features`` needs ``key_result_id, cycle_id, week`` (and ``as_of``, else it is derived from the
    cycle start). ``checkins`` are processed check-ins (as from ``validate_checkins``); by default
    those of ``data.files``. Only check-ins with ``checkin_at <= as_of`` affect a row's
    ``bayes_p``. Rows without a check-in by their as-of time get NaN, as do ``oracle_p`` of key
    results missing from the ground truth.
    """
    ci = _prepare(observed_checkins(data) if checkins is None else checkins)
    out = features[["key_result_id", "cycle_id", "week"]].reset_index(drop=True)
    if ci.empty or out.empty:
        return out.assign(oracle_p=np.nan, bayes_p=np.nan)
    rows = _attach(features, ci)
    truth = data.ground_truth[[*KEYS, "mu", "t_last_weeks"]].astype({"key_result_id": str, "cycle_id": str})
    rows = rows.merge(truth, on=KEYS, how="left")
    n = len(rows)
    oracle, bayes = np.full(n, np.nan), np.full(n, np.nan)

    seen = rows["pos"].notna().to_numpy()
    pos = rows["pos"].fillna(-1).astype(int).to_numpy()
    last = ci.iloc[np.where(seen, pos, 0)].reset_index(drop=True)
    coarse = seen & last["coarse"].to_numpy()
    s_days = last["t_days"].to_numpy()
    a_days = (rows["as_of"] - last["origin"]).dt.total_seconds().to_numpy() / _DAY_SECONDS
    samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    for start in range(0, n, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, n))
        idx = idx[seen[idx]]
        if idx.size == 0:
            continue
        lc = last.iloc[idx]
        t_days, w = _last_checkin_samples(s_days[idx], a_days[idx], lc["cycle_days"].to_numpy(float),
                                          lc["ambiguous"].to_numpy(bool))
        cont = ~coarse[idx]
        bayes[idx[cont]] = _continuous_bayes(lc[cont], t_days[cont] / 7.0, w[cont])
        samples.update({int(i): (t_days[k] / 7.0, w[k]) for k, i in enumerate(idx) if coarse[i]})

    cont_rows = np.flatnonzero(seen & ~coarse)
    oracle[cont_rows] = _continuous_oracle(last.iloc[cont_rows], rows.iloc[cont_rows])
    _coarse(ci, rows, pos, np.flatnonzero(coarse), samples, oracle, bayes)

    return out.assign(oracle_p=np.clip(oracle, 0.0, 1.0), bayes_p=np.clip(bayes, 0.0, 1.0))


# ---------------------------------------------------------------------------------------------
# Check-ins and rows
# ---------------------------------------------------------------------------------------------


def _utc(series: pd.Series) -> pd.Series:
    ts = pd.to_datetime(series)
    ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    return ts.astype("datetime64[ns, UTC]")


def _prepare(checkins: pd.DataFrame) -> pd.DataFrame:
    """One row per check-in with its time, observation interval and running state."""
    sort = [*KEYS, "checkin_at", *(["checkin_id"] if "checkin_id" in checkins else [])]
    df = checkins.astype({"key_result_id": str, "cycle_id": str}).sort_values(sort).reset_index(drop=True)
    df["checkin_at"] = _utc(df["checkin_at"])
    df["origin"] = _utc(df["cycle_start"])
    df["cycle_days"] = (pd.to_datetime(df["cycle_end"]) - pd.to_datetime(df["cycle_start"])).dt.days + 1.0
    df["t_days"] = (df["checkin_at"] - df["origin"]).dt.total_seconds() / _DAY_SECONDS
    df["t"] = df["t_days"] / 7.0
    df["idx"] = df.groupby(KEYS, sort=False).cumcount()
    progress = df["progress"].astype(float)
    df["ambiguous"] = (df["idx"] == 0) & (df["t"] < 1) & (df["value"].astype(float) == df["start_value"].astype(float))
    df["reached"] = progress.clip(0.0, 1.0) >= DEFAULT_TARGET_SCORE   # exactly how labels are scored
    df["coarse"] = df["metric_kind"].astype(str).isin(COARSE_METRICS)

    units = (df["target_value"].astype(float) - df["start_value"].astype(float)).abs()
    milestone = df["metric_kind"].astype(str) == "milestone"
    df["thr"] = np.where(milestone, np.ceil(DEFAULT_TARGET_SCORE * units - 1e-9) / units, DEFAULT_TARGET_SCORE)
    # Coarse observations as progress intervals [lo, hi).
    k = np.round(progress * units)
    ms_lo = np.where(k > 0, k / units, -np.inf)
    ms_hi = np.where(k < units, (k + 1) / units, np.inf)
    bool_on = progress >= 0.5
    df["lo"] = np.where(milestone, ms_lo, np.where(bool_on, DEFAULT_TARGET_SCORE, -np.inf))
    df["hi"] = np.where(milestone, ms_hi, np.where(bool_on, np.inf, DEFAULT_TARGET_SCORE))

    # Continuous metrics: the last informative observation is a sufficient statistic.
    info = ~df["ambiguous"]
    g = df.assign(_x=progress.where(info), _s=df["t"].where(info)).groupby(KEYS, sort=False)
    df["x_info"] = g["_x"].ffill().fillna(0.0)
    df["s_info"] = g["_s"].ffill().fillna(0.0)

    df["elapsed"] = (np.floor(df["t_days"]) / df["cycle_days"]).clip(0.0, 1.0)
    df["conf"] = pd.to_numeric(df["confidence"], errors="coerce").astype(float)
    df["use_conf"] = (df["idx"] >= 1) & df["conf"].notna()   # first confidences are drawn blind
    df["prior_mean"] = BASE_DRIFT + df["okr_kind"].astype(str).map(KIND_EFFECT).fillna(0.0)
    return df


def _attach(features: pd.DataFrame, ci: pd.DataFrame) -> pd.DataFrame:
    """Feature keys with ``pos``: the index in ``ci`` of the last check-in at or before as-of."""
    rows = features[[*KEYS, "week"]].astype({"key_result_id": str, "cycle_id": str}).reset_index(drop=True)
    if "as_of" in features:
        rows["as_of"] = _utc(features["as_of"].reset_index(drop=True))
    else:
        starts = ci.drop_duplicates("cycle_id").set_index("cycle_id")["origin"]
        rows["as_of"] = rows["cycle_id"].map(starts) + pd.to_timedelta(rows["week"].astype(float) * 7, unit="D")
    rows["_row"] = np.arange(len(rows))
    right = ci[[*KEYS, "checkin_at"]].assign(pos=np.arange(len(ci), dtype=float))
    merged = pd.merge_asof(rows.dropna(subset=["as_of"]).sort_values("as_of"), right.sort_values("checkin_at"),
                           left_on="as_of", right_on="checkin_at", by=KEYS, direction="backward")
    pos = merged.set_index("_row")["pos"].reindex(rows["_row"])
    return rows.assign(pos=pos.to_numpy()).drop(columns="_row")


# ---------------------------------------------------------------------------------------------
# When is the last check-in?
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draws:
    u_stop: np.ndarray     # position of the stop within its prior range
    u_frac: np.ndarray     # silent stop fraction
    silent: np.ndarray     # stratum of each draw
    u_gap: np.ndarray      # next gap, within its conditional range
    later: np.ndarray      # (_MAX_GAPS + 1, draws): offsets of later check-ins from the next one


@functools.cache
def _draws() -> _Draws:
    """Fixed stratified draws shared by all rows (common random numbers: smooth in s and as-of)."""
    rng = np.random.default_rng(20240)
    strata = (np.arange(_HALF_DRAWS) + 0.5) / _HALF_DRAWS
    u_stop = np.concatenate([strata, strata])
    u_frac = np.concatenate([np.zeros(_HALF_DRAWS), rng.permutation(strata)])
    silent = np.arange(2 * _HALF_DRAWS) >= _HALF_DRAWS
    u_gap = np.concatenate([rng.permutation(strata), rng.permutation(strata)])
    gaps = np.maximum(1.0, np.exp(_LOG_GAP + GAP_LOG_SD * rng.standard_normal((_MAX_GAPS, 2 * _HALF_DRAWS))))
    later = np.vstack([np.zeros((1, 2 * _HALF_DRAWS)), np.cumsum(gaps, axis=0)])
    return _Draws(u_stop, u_frac, silent, u_gap, later)


def _gap_survival(days: np.ndarray) -> np.ndarray:
    """P(gap > days) for the lognormal gaps (the generator's 1-day floor has mass ~1e-5)."""
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(days, 1e-300)) - _LOG_GAP) / GAP_LOG_SD
    return np.where(days > 0, ndtr(-z), 1.0)


def _last_checkin_samples(s: np.ndarray, a: np.ndarray, c: np.ndarray,
                          must_continue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted samples (rows x draws, days since cycle start) of the KR's last check-in time.

    ``s``: last check-in seen; ``a``: as-of; ``c``: cycle length in days. The stop time is drawn
    from its prior given ``stop >= s`` (both strata), the next gap ``g`` given that no check-in
    arrived in ``(s, min(stop, as_of)]`` (and, for ``must_continue``, that ``s + g <= stop``); the
    weight is the probability of that conditioning. After ``s + g`` check-ins follow the schedule
    until the stop.
    """
    d = _draws()
    s, a, c, must = s[:, None], a[:, None], c[:, None], must_continue[:, None]
    first = c - 1.0                                      # the cycle's last day, 00:00
    lo = np.maximum(s, first)
    regular = lo + (first + LATE_DAYS - lo) * d.u_stop
    regular_mass = (1 - SILENT_SHARE) * np.clip((first + LATE_DAYS - lo) / LATE_DAYS, 0.0, 1.0)
    quiet = (first + LATE_DAYS * d.u_stop) * (SILENT_STOP[0] + (SILENT_STOP[1] - SILENT_STOP[0]) * d.u_frac)
    stop = np.where(d.silent, quiet, regular)
    prior = np.where(d.silent, SILENT_SHARE * (quiet >= s), regular_mass) / _HALF_DRAWS

    p_lo = _gap_survival(np.minimum(stop, a) - s)
    p_hi = np.where(must, _gap_survival(stop - s), 0.0)
    weight = prior * np.clip(p_lo - p_hi, 0.0, None)
    p = np.clip(p_lo - (p_lo - p_hi) * d.u_gap, 1e-300, 1.0)
    nxt = s + np.maximum(1.0, np.exp(_LOG_GAP - GAP_LOG_SD * ndtri(p)))

    last = np.empty_like(nxt)
    room = stop - nxt
    for j in range(nxt.shape[1]):                        # per draw: its later gaps are one sorted column
        k = np.searchsorted(d.later[:, j], room[:, j], side="right") - 1
        last[:, j] = nxt[:, j] + d.later[np.clip(k, 0, None), j]
    times = np.where(nxt > stop, s, last)

    total = weight.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0                             # outside the generator's schedule: assume stopped
    weight[empty] = 0.0
    weight[empty, 0] = 1.0
    times[empty] = s[empty]
    return times, weight / np.where(empty[:, None], 1.0, total)


# ---------------------------------------------------------------------------------------------
# Continuous metrics: closed form
# ---------------------------------------------------------------------------------------------


def _continuous_bayes(last: pd.DataFrame, t_last: np.ndarray, weight: np.ndarray) -> np.ndarray:
    x, s = last["x_info"].to_numpy()[:, None], last["s_info"].to_numpy()[:, None]
    m0 = last["prior_mean"].to_numpy()[:, None]
    precision = 1.0 / PRIOR_VAR + s / SIGMA**2
    mean, var = (m0 / PRIOR_VAR + x / SIGMA**2) / precision, 1.0 / precision
    tau = np.maximum(t_last - s, 0.0)
    sd = np.sqrt(SIGMA**2 * tau + var * tau**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ndtr((x + mean * tau - last["thr"].to_numpy()[:, None]) / sd)
    p = np.where(tau > _EPS_WEEKS, p, last["reached"].to_numpy()[:, None])
    return (p * weight).sum(axis=1)


def _continuous_oracle(last: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    x, s = last["x_info"].to_numpy(), last["s_info"].to_numpy()
    mu, t_last = rows["mu"].to_numpy(float), rows["t_last_weeks"].to_numpy(float)
    tau = t_last - s
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ndtr((x + mu * tau - last["thr"].to_numpy()) / (SIGMA * np.sqrt(tau)))
    done = t_last <= last["t"].to_numpy() + 1e-6         # the last check-in has been seen
    return np.where(done, last["reached"].to_numpy(float), np.where(np.isnan(t_last), np.nan, p))


# ---------------------------------------------------------------------------------------------
# Coarse metrics: grid filter over (mu, y)
# ---------------------------------------------------------------------------------------------


def _kernel(dt_weeks: float) -> np.ndarray:
    """Transition matrix of y over ``dt_weeks``, integrated over the destination cell."""
    sd = SIGMA * math.sqrt(max(dt_weeks, 0.0))
    if sd < 1e-9:
        return np.eye(_G)
    k = ndtr((_OFFSETS + _Y_STEP / 2) / sd) - ndtr((_OFFSETS - _Y_STEP / 2) / sd)
    return k[_TOEPLITZ]


def _likelihood(obs: dict[str, Any], mu: np.ndarray) -> np.ndarray:
    """P(check-in | mu, y) on the grid: interval share of each cell times the confidence's odds."""
    shift = mu[:, None] * obs["t"]
    inside = (np.minimum(_Y_HI, obs["hi"] - shift) - np.maximum(_Y_LO, obs["lo"] - shift)) / _Y_STEP
    like = np.clip(inside, 0.0, 1.0)
    if obs["use_conf"]:
        m = CONF_CENTER + CONF_SLOPE * (_Y[None, :] + shift - CONF_PACE * obs["elapsed"])
        c = obs["conf"]
        upper = ndtr(c + 0.5 - m) if c < CONF_MAX else 1.0
        lower = ndtr(c - 0.5 - m) if c > 0 else 0.0
        like = like * (upper - lower)
    if obs["ambiguous"]:
        like = NOT_STARTED_SHARE + (1 - NOT_STARTED_SHARE) * like
    return like


def _filter(obs: list[dict[str, Any]], mu: np.ndarray, prior: np.ndarray) -> Iterator[np.ndarray]:
    """Posterior over (mu, y) just after each check-in of one KR, normalised."""
    f = np.zeros((len(mu), _G))
    f[:, _G // 2] = prior                                # y(0) = 0
    t_prev = 0.0
    for o in obs:
        live = f.sum(axis=0) > 1e-14                     # propagate only the support: small products
        f = f[:, live] @ _kernel(o["t"] - t_prev)[live]
        t_prev = o["t"]
        post = f * _likelihood(o, mu)
        total = post.sum()
        if total > 0:                                    # else inconsistent with the grid: skip it
            f = post / total
        yield f


def _reach(f: np.ndarray, mu: np.ndarray, s: float, t_last: np.ndarray, thr: float) -> np.ndarray:
    """P(x(T) >= thr) for each ``T > s`` given the posterior ``f`` at time ``s``."""
    keep = f.sum(axis=0) > 1e-12
    tau = np.maximum(t_last - s, _EPS_WEEKS)
    z = (_Y[keep][None, :, None] + mu[:, None, None] * t_last[None, None, :] - thr) / (SIGMA * np.sqrt(tau))
    return np.einsum("mj,mjk->k", f[:, keep], ndtr(z))


def _coarse(ci: pd.DataFrame, rows: pd.DataFrame, pos: np.ndarray, targets: np.ndarray,
            samples: dict[int, tuple[np.ndarray, np.ndarray]], oracle: np.ndarray, bayes: np.ndarray) -> None:
    """Fill ``oracle`` and ``bayes`` for the coarse-metric rows ``targets``, one KR at a time."""
    by_pos: dict[int, list[int]] = {}
    for i in targets:
        by_pos.setdefault(int(pos[i]), []).append(int(i))
    ci_groups = ci.groupby(KEYS, sort=False).indices
    for members in ci_groups.values():
        wanted = [p for p in members if p in by_pos]
        if not wanted:
            continue
        span = members[: members.tolist().index(max(wanted)) + 1]
        obs = ci.iloc[span][_OBS_FIELDS].to_dict("records")
        first = obs[0]
        sd = math.sqrt(PRIOR_VAR)
        mu = first["prior_mean"] + sd * np.linspace(-_MU_SDS, _MU_SDS, _MU_POINTS)
        prior = np.exp(-0.5 * ((mu - first["prior_mean"]) / sd) ** 2)
        truth = rows.iloc[by_pos[wanted[0]][0]]
        true_mu, true_t = float(truth["mu"]), float(truth["t_last_weeks"])
        known = not (math.isnan(true_mu) or math.isnan(true_t))
        oracle_states = _filter(obs, np.array([true_mu if known else 0.0]), np.ones(1))
        for p_ci, o, f, f_oracle in zip(span, obs, _filter(obs, mu, prior / prior.sum()), oracle_states,
                                        strict=True):
            if p_ci not in by_pos:
                continue
            s, thr, reached = float(o["t"]), float(o["thr"]), float(o["reached"])
            if known:
                oracle_p = reached if true_t <= s + 1e-6 else float(
                    _reach(f_oracle, np.array([true_mu]), s, np.array([true_t]), thr)[0])
            for i in by_pos[p_ci]:
                if known:
                    oracle[i] = oracle_p
                t_last, w = samples[i]
                stopped = t_last <= s + 1e-6           # case "already stopped": T = s exactly
                p = w[stopped].sum() * reached
                if (~stopped).any() and w[~stopped].sum() > 0:
                    tb, wb = t_last[~stopped], w[~stopped]
                    grid = np.unique(np.linspace(tb.min(), tb.max(), _T_GRID_POINTS))
                    p += float(np.sum(wb * np.interp(tb, grid, _reach(f, mu, s, grid, thr))))
                bayes[i] = p
