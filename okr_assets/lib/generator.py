"""Deterministic synthetic OKR check-ins, with the exact probability that each key result succeeds.

Real OKR exports are private, so demos, tests and benchmarks use this generator. The model:

- org -> teams -> quarterly cycles -> 2-4 objectives per team and cycle -> 2-5 key results
  (median 3) -> irregular check-ins (gaps lognormal, median ~11 days; some key results go silent).
- Each key result has a weekly drift ``mu = base + team effect + kind effect + noise`` and its
  latent progress is a Brownian motion with drift, ``progress(t) = mu*t + sigma*W(t)`` (t in
  weeks since the cycle started), observed at the check-ins. Aspirational KRs drift slower.
- The check-in schedule is drawn independently of the path, so the probability that the score at
  the last check-in reaches the threshold is known exactly:
  ``P = 1 - Phi((thr - mu*t_last) / (sigma*sqrt(t_last)))``. It is written to a ground-truth file
  next to the CSVs (never read by the pipeline) for comparing models with the best achievable.

Everything is drawn from ``numpy`` generators seeded by (seed, team, quarter), so the same seed
gives the same key results and check-ins whatever ``as_of`` or the number of cycles requested;
``as_of`` only cuts the timeline.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from okr_assets.lib.contract import CHECKIN_COLUMNS, DEFAULT_TARGET_SCORE, RejectReason

# Calibrated by simulation so that ~40-45% of key results end with score >= 0.7.
BASE_DRIFT = 0.058          # progress per week
TEAM_EFFECT_SD = 0.006
KIND_EFFECT = {"committed": 0.004, "aspirational": -0.014}
DRIFT_NOISE_SD = 0.016
SIGMA = 0.085               # per sqrt(week)
GAP_MEDIAN_DAYS, GAP_LOG_SD = 11.5, 0.58
SILENT_SHARE = 0.10
DECREASE_SHARE = 0.05

_METRICS = ("numeric", "percent", "currency", "boolean", "milestone")
_METRIC_P = (0.40, 0.20, 0.20, 0.10, 0.10)
_UNITS = {"numeric": ("users", "tickets", "deals", "releases", "NPS points"), "percent": ("%",),
          "currency": ("EUR", "USD"), "boolean": (None,), "milestone": ("milestones",)}
_OBJECTIVES = ("Delight our customers", "Grow revenue in new markets", "Ship a reliable platform",
               "Build a great place to work", "Cut operating costs", "Win the enterprise segment",
               "Make onboarding effortless", "Raise product quality")
_KRS = ("Increase weekly active users", "Reduce churn", "Close new deals", "Launch the mobile app",
        "Cut p95 latency", "Hire senior engineers", "Raise NPS", "Automate invoicing",
        "Reduce support backlog", "Migrate to the new billing system")
_COMMENTS = ("", "", "", "On track after the launch", "Blocked by legal review, waiting",
             'Customer said "great progress"', "Hiring freeze, re-planning\nnext steps with the team",
             "Data pipeline delay; numbers may lag", "Good week, 3 deals closed")
_SYNONYMS = {"on_track": ("On Track", "ON_TRACK"), "at_risk": ("at risk", "At Risk"),
             "off_track": ("Off Track",), "achieved": ("Achieved",), "not_started": ("Not Started",)}
BAD_REASONS: tuple[RejectReason, ...] = tuple(
    r for r in RejectReason if r not in {RejectReason.UNREADABLE_FILE, RejectReason.MALFORMED_ROW}
    and not r.value.startswith(("message_", "unknown_schema", "invalid_envelope")))
FIRST_PARTITION = dt.date(2024, 1, 1)


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    teams: int = 6
    cycles: int = 6
    as_of: dt.datetime | None = None
    bad_share: float = 0.0
    files_per_cycle: int = 3


@dataclass(frozen=True)
class GeneratedData:
    files: dict[str, pd.DataFrame]
    ground_truth: pd.DataFrame
    as_of: dt.datetime


def _quarters(as_of: dt.date, count: int) -> list[tuple[str, dt.date, dt.date, int]]:
    """(cycle_id, start, end, absolute quarter number) of the ``count`` quarters up to ``as_of``."""
    current = as_of.year * 4 + (as_of.month - 1) // 3
    out = []
    for q in range(current - count + 1, current + 1):
        year, idx = divmod(q, 4)
        start = dt.date(year, 3 * idx + 1, 1)
        end = (dt.date(year + (idx == 3), (3 * idx + 3) % 12 + 1, 1)) - dt.timedelta(days=1)
        out.append((f"{year}-Q{idx + 1}", start, end, q))
    return out


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _fmt_time(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _schedule(rng: np.random.Generator, start: dt.date, end: dt.date) -> list[dt.datetime]:
    origin = dt.datetime.combine(start, dt.time(), dt.UTC)
    stop = dt.datetime.combine(end, dt.time(), dt.UTC) + dt.timedelta(days=float(rng.uniform(0, 7)))
    if rng.random() < SILENT_SHARE:  # goes silent part-way through the cycle
        stop = origin + (stop - origin) * float(rng.uniform(0.3, 0.8))
    t = origin + dt.timedelta(days=float(rng.uniform(0, 10)))
    times = []
    while t <= stop:
        times.append(t)
        gap = max(1.0, float(rng.lognormal(math.log(GAP_MEDIAN_DAYS), GAP_LOG_SD)))
        t = t + dt.timedelta(days=gap)
    return times or [origin + dt.timedelta(days=1)]


def _metric(rng: np.random.Generator) -> tuple[str, str | None, float, float, str, float]:
    """(metric_kind, unit, start, target, direction, threshold on progress)."""
    kind = str(rng.choice(_METRICS, p=_METRIC_P))
    unit = _UNITS[kind][int(rng.integers(len(_UNITS[kind])))]
    if kind == "boolean":
        return kind, unit, 0.0, 1.0, "increase", DEFAULT_TARGET_SCORE
    if kind == "milestone":
        n = int(rng.integers(3, 7))
        return kind, unit, 0.0, float(n), "increase", math.ceil(DEFAULT_TARGET_SCORE * n - 1e-9) / n
    scale = {"numeric": 1000.0, "percent": 40.0, "currency": 100000.0}[kind]
    start = round(float(rng.uniform(0, scale)), 0)
    span = round(float(rng.uniform(0.2, 1.0)) * scale, 0) + 10
    if kind == "percent":
        start, span = round(float(rng.uniform(0, 50)), 1), round(float(rng.uniform(10, 45)), 1)
    if rng.random() < DECREASE_SHARE:
        return kind, unit, start + span, start, "decrease", DEFAULT_TARGET_SCORE
    return kind, unit, start, start + span, "increase", DEFAULT_TARGET_SCORE


def _value(kind: str, start: float, target: float, progress: float) -> float:
    if kind == "boolean":
        return 1.0 if progress >= DEFAULT_TARGET_SCORE else 0.0
    if kind == "milestone":
        return float(math.floor(min(max(progress, 0.0), 1.0) * target + 1e-9))
    return round(start + progress * (target - start), 2)


def _status(rng: np.random.Generator, progress: float, elapsed: float, first: bool, at_start: bool) -> str:
    if first and at_start:
        status = "not_started"
    elif progress >= 1:
        status = "achieved"
    else:
        gap = progress - elapsed
        status = "on_track" if gap > -0.1 else "at_risk" if gap > -0.25 else "off_track"
    if rng.random() < 0.05:  # OKR tools export human spellings now and then
        options = _SYNONYMS[status]
        return options[int(rng.integers(len(options)))]
    return status


def _key_results(config: GeneratorConfig, team: int, cycle: tuple[str, dt.date, dt.date, int],
                 team_effect: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cycle_id, start, end, quarter = cycle
    rng = np.random.default_rng([config.seed, team, quarter])
    team_id = f"team-s{config.seed}-{team:02d}"
    rows: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    cycle_days = (end - start).days + 1
    for o in range(int(rng.integers(2, 5))):
        objective_id = f"obj-s{config.seed}-{cycle_id}-t{team:02d}-o{o}"
        okr_kind = "aspirational" if rng.random() < 0.30 else "committed"
        title = _OBJECTIVES[int(rng.integers(len(_OBJECTIVES)))]
        n_krs = int(rng.choice([2, 3, 3, 3, 4, 5]))
        for k in range(n_krs):
            kr_id = f"kr-s{config.seed}-{cycle_id}-t{team:02d}-o{o}-k{k}"
            kind, unit, v0, v1, direction, threshold = _metric(rng)
            mu = BASE_DRIFT + team_effect + KIND_EFFECT[okr_kind] + float(rng.normal(0, DRIFT_NOISE_SD))
            weight = float(rng.choice([1.0, 1.0, 1.0, 0.5, 0.25]))
            owner = f"user-s{config.seed}-t{team:02d}-{int(rng.integers(1, 6))}"
            kr_title = _KRS[int(rng.integers(len(_KRS)))]
            times = _schedule(rng, start, end)
            origin = dt.datetime.combine(start, dt.time(), dt.UTC)
            progress, t_prev = 0.0, 0.0
            for n, ts in enumerate(times):
                t = (ts - origin).total_seconds() / 604800
                progress += float(rng.normal(mu * (t - t_prev), SIGMA * math.sqrt(max(t - t_prev, 1e-9))))
                t_prev = t
                at_start = n == 0 and t < 1 and rng.random() < 0.5
                reported = 0.0 if at_start else progress
                elapsed = min(max((ts - origin).days / cycle_days, 0.0), 1.0)
                if n == 0:
                    confidence: int | None = 5 if rng.random() < 0.85 else int(rng.integers(3, 9))
                else:
                    confidence = int(np.clip(round(5 + 8 * (reported - 0.9 * elapsed) + rng.normal(0, 1)), 0, 10))
                if rng.random() < 0.05:
                    confidence = None
                rows.append({
                    "org_id": f"org-s{config.seed}", "team_id": team_id, "cycle_id": cycle_id,
                    "cycle_start": start.isoformat(), "cycle_end": end.isoformat(),
                    "objective_id": objective_id, "objective_title": title, "okr_kind": okr_kind,
                    "key_result_id": kr_id, "kr_title": kr_title, "owner_id": owner, "metric_kind": kind,
                    "direction": direction, "unit": unit, "start_value": v0, "target_value": v1,
                    "weight": weight, "checkin_id": f"ci-s{config.seed}-{cycle_id}-t{team:02d}-o{o}-k{k}-{n:02d}",
                    "checkin_at": _fmt_time(ts), "value": _value(kind, v0, v1, reported),
                    "confidence": confidence, "status": _status(rng, reported, elapsed, n == 0, at_start),
                    "comment": _COMMENTS[int(rng.integers(len(_COMMENTS)))] or None, "_ts": ts,
                })
            t_last = max(t_prev, 1e-6)
            truth.append({
                "key_result_id": kr_id, "cycle_id": cycle_id, "team_id": team_id, "okr_kind": okr_kind,
                "metric_kind": kind, "mu": mu, "sigma": SIGMA, "t_last_weeks": t_last, "threshold": threshold,
                "p_reach": 1 - _phi((threshold - mu * t_last) / (SIGMA * math.sqrt(t_last))),
                "reached": bool(progress >= threshold - 1e-9),
                "final_score": float(min(max(progress, 0.0), 1.0)),
                "planned_last_checkin_at": _fmt_time(times[-1]),
            })
    return rows, truth


def _bad_row(rng: np.random.Generator, base: dict[str, Any], reason: RejectReason, i: int, seed: int,
             as_of: dt.datetime) -> dict[str, Any]:
    row = {**base, "checkin_id": f"ci-s{seed}-bad-{i:05d}"}
    start = dt.date.fromisoformat(base["cycle_start"])
    end = dt.date.fromisoformat(base["cycle_end"])
    v0, v1 = float(base["start_value"]), float(base["target_value"])
    match reason:
        case RejectReason.MISSING_REQUIRED:
            row[["team_id", "key_result_id", "value", "checkin_id"][i % 4]] = None
        case RejectReason.UNPARSEABLE_NUMBER:
            row["value"] = ["12,5", "NaN", "inf", "n/a"][i % 4]
        case RejectReason.UNPARSEABLE_DATE:
            row["checkin_at"] = ["last tuesday", "2025-13-45T25:00:00Z", "07/08/2025 10:00"][i % 3]
        case RejectReason.UNKNOWN_ENUM:
            row["status"] = ["maybe", "green", "paused"][i % 3]
        case RejectReason.INVALID_CYCLE:
            row["cycle_end"] = (start - dt.timedelta(days=30)).isoformat()
        case RejectReason.START_EQUALS_TARGET:
            row["target_value"] = row["start_value"]
        case RejectReason.DIRECTION_CONTRADICTION:
            row["direction"] = "decrease" if base["direction"] == "increase" else "increase"
        case RejectReason.CONFIDENCE_OUT_OF_RANGE:
            row["confidence"] = ["11", "7.5", "-1"][i % 3]
        case RejectReason.WEIGHT_OUT_OF_RANGE:
            row["weight"] = ["1.5", "0", "-0.2"][i % 3]
        case RejectReason.CHECKIN_IN_FUTURE:
            row["checkin_at"] = f"{as_of.date() + dt.timedelta(days=30)}T12:00:00Z"
        case RejectReason.BEFORE_FIRST_PARTITION:
            row.update(cycle_start="2023-10-01", cycle_end="2023-12-31", cycle_id="2023-Q4",
                       checkin_at="2023-12-20T10:00:00Z")
        case RejectReason.OUTSIDE_CYCLE:
            late = dt.datetime.combine(end, dt.time(12), dt.UTC) + dt.timedelta(days=20)
            early = dt.datetime.combine(start, dt.time(12), dt.UTC) - dt.timedelta(days=20)
            row["checkin_at"] = _fmt_time(late if late <= as_of else early)
        case RejectReason.PROGRESS_OUT_OF_RANGE:
            row["value"] = round(v0 + 7 * (v1 - v0), 2)
    return row


def generate(config: GeneratorConfig) -> GeneratedData:
    as_of = (config.as_of or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    cycles = _quarters(as_of.date(), config.cycles)
    rows: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    for team in range(1, config.teams + 1):
        team_effect = float(np.random.default_rng([config.seed, team]).normal(0, TEAM_EFFECT_SD))
        for cycle in cycles:
            r, t = _key_results(config, team, cycle, team_effect)
            rows += r
            truth += t
    frame = pd.DataFrame(rows)
    frame = frame[frame["_ts"] <= as_of]

    files: dict[str, pd.DataFrame] = {}
    bad_rng = np.random.default_rng([config.seed, 99])
    bad_index = 0
    overlap = dt.timedelta(days=3)  # each export repeats the last days of the previous one
    for cycle_id, start, end, _ in cycles:
        in_cycle = frame[frame["cycle_id"] == cycle_id]
        origin = dt.datetime.combine(start, dt.time(), dt.UTC)
        span = dt.datetime.combine(end, dt.time(), dt.UTC) + dt.timedelta(days=8) - origin
        for k in range(config.files_per_cycle):
            lo = origin + span * k / config.files_per_cycle - (overlap if k else dt.timedelta(0))
            hi = origin + span * (k + 1) / config.files_per_cycle
            part = in_cycle[(in_cycle["_ts"] >= lo) & (in_cycle["_ts"] < hi)].sort_values(["_ts", "checkin_id"])
            if part.empty:
                continue
            records = part.drop(columns="_ts").to_dict("records")
            good = list(records)
            n_bad = round(config.bad_share * len(good))
            for _ in range(n_bad):
                base = good[int(bad_rng.integers(len(good)))]
                reason = BAD_REASONS[bad_index % len(BAD_REASONS)]
                bad = _bad_row(bad_rng, base, reason, bad_index, config.seed, as_of)
                records.insert(int(bad_rng.integers(len(records) + 1)), bad)
                bad_index += 1
            out = pd.DataFrame(records).reindex(columns=list(CHECKIN_COLUMNS))
            # integers stay integers in the CSV ("5", not "5.0"); bad rows keep their text
            out["confidence"] = [v if v is None or isinstance(v, str) or pd.isna(v) else str(int(v))
                                 for v in out["confidence"]]
            files[f"okr_checkins_s{config.seed}_{cycle_id}_part{k + 1}.csv"] = out
    return GeneratedData(files=files, ground_truth=pd.DataFrame(truth), as_of=as_of)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name then rename: the landing sensor never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_dataset(data: GeneratedData, out_dir: Path, seed: int) -> list[Path]:
    """Add the CSV exports and the ground-truth file to ``out_dir`` (never deletes anything).
    A file whose content is unchanged is not rewritten, so the landing sensor ignores it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in data.files.items():
        path = out_dir / name
        content = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
        if not (path.exists() and path.read_bytes() == content):
            _atomic_write(path, content)
        paths.append(path)
    header = {"seed": seed, "as_of": data.as_of.isoformat(), "threshold_score": DEFAULT_TARGET_SCORE,
              "model": "progress(t) = mu*t + sigma*W(t), t in weeks; "
                       "p_reach = 1 - Phi((threshold - mu*t_last) / (sigma*sqrt(t_last)))",
              "parameters": {"base_drift": BASE_DRIFT, "team_effect_sd": TEAM_EFFECT_SD,
                             "kind_effect": KIND_EFFECT, "drift_noise_sd": DRIFT_NOISE_SD, "sigma": SIGMA},
              "config": {k: str(v) for k, v in asdict(GeneratorConfig(seed=seed)).items()}}
    truth = {"header": header, "key_results": data.ground_truth.to_dict("records")}
    _atomic_write(out_dir / f"okr_ground_truth_s{seed}.json", json.dumps(truth, indent=1).encode())
    return paths
