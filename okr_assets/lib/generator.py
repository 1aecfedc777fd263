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
``as_of`` only cuts the timeline. Pure Python/pandas/numpy: no Dagster import.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from okr_assets.lib.contract import CHECKIN_COLUMNS, CYCLE_GRACE_DAYS, DEFAULT_TARGET_SCORE, RejectReason

# Calibrated by simulation (40 seeds each of the default config and of teams=40) so that ~42% of
# key results end with score >= 0.7 (committed ~48%, aspirational ~28%); final progress has a
# spread of ~0.37 around a mean of ~0.75, so |progress| stays far below the validator's 5.
BASE_DRIFT = 0.058          # progress per week
TEAM_EFFECT_SD = 0.006
KIND_EFFECT = {"committed": 0.004, "aspirational": -0.014}
DRIFT_NOISE_SD = 0.016
SIGMA = 0.085               # per sqrt(week)
GAP_MEDIAN_DAYS, GAP_LOG_SD = 11.5, 0.58   # p10 ~5.5 days, p90 ~24 days
SILENT_SHARE = 0.10
DECREASE_SHARE = 0.05       # of numeric/percent/currency KRs, ~4% of all
ASPIRATIONAL_SHARE = 0.30
FIRST_CONFIDENCE_5_SHARE = 0.85
EMPTY_CONFIDENCE_SHARE = 0.05
SYNONYM_SHARE = 0.05
WEEK_SECONDS = 7 * 86400
_GOLDEN = (math.sqrt(5) - 1) / 2
_STD_NORMAL = NormalDist()

_METRICS = ("numeric", "percent", "currency", "boolean", "milestone")
_METRIC_P = (0.40, 0.20, 0.20, 0.10, 0.10)
_UNITS: dict[str, tuple[str | None, ...]] = {
    "numeric": ("users", "tickets", "deals", "releases", "NPS points"), "percent": ("%",),
    "currency": ("EUR", "USD"), "boolean": (None,), "milestone": ("milestones",)}
_OBJECTIVES = ("Delight our customers", "Grow revenue in new markets", "Ship a reliable platform",
               "Build a great place to work", "Cut operating costs", "Win the enterprise segment",
               "Make onboarding effortless", "Raise product quality")
_KRS = ("Increase weekly active users", "Reduce churn", "Close new deals", "Launch the mobile app",
        "Cut p95 latency", "Hire senior engineers", "Raise NPS", "Automate invoicing",
        "Reduce support backlog", "Migrate to the new billing system")
# Commas, quotes and a newline on purpose: the CSV path must survive RFC 4180 quoting.
_COMMENTS = ("On track after the launch", "Blocked by legal review, waiting",
             'Customer said "great progress"', "Hiring freeze, re-planning\nnext steps with the team",
             "Data pipeline delay; numbers may lag", "Good week, 3 deals closed", "No change",
             "Waiting on the vendor", 'Scope cut to the "must haves"', "Two people out sick, slower week")
_EMPTY_COMMENT_SHARE = 0.55
_SYNONYMS = {"on_track": ("On Track", "ON_TRACK", "on-track"), "at_risk": ("at risk", "At Risk"),
             "off_track": ("Off Track", "behind"), "achieved": ("Achieved", "Done"),
             "not_started": ("Not Started", "todo")}

# The reasons the validator can give a single well-formed row, in the contract's rule order.
# File/row-structure reasons (unreadable file, malformed row) and the Kafka envelope reasons
# cannot come from a CSV row's content.
BAD_REASONS: tuple[RejectReason, ...] = (
    RejectReason.MISSING_REQUIRED, RejectReason.UNPARSEABLE_NUMBER, RejectReason.UNPARSEABLE_DATE,
    RejectReason.UNKNOWN_ENUM, RejectReason.INVALID_CYCLE, RejectReason.START_EQUALS_TARGET,
    RejectReason.DIRECTION_CONTRADICTION, RejectReason.CONFIDENCE_OUT_OF_RANGE,
    RejectReason.WEIGHT_OUT_OF_RANGE, RejectReason.CHECKIN_IN_FUTURE, RejectReason.BEFORE_FIRST_PARTITION,
    RejectReason.OUTSIDE_CYCLE, RejectReason.PROGRESS_OUT_OF_RANGE,
)
FIRST_PARTITION = dt.date(2024, 1, 1)   # the pipeline's default; "too early" bad rows are dated before it
OVERLAP = dt.timedelta(days=3)          # each export repeats the last days of the previous one

Cycle = tuple[str, dt.date, dt.date, int]   # (cycle_id, first day, last day, absolute quarter)


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    teams: int = 6
    cycles: int = 6            # the calendar quarters ending with the quarter containing as_of
    as_of: dt.datetime | None = None   # UTC; default now; no check-in after it is emitted
    bad_share: float = 0.0     # extra bad rows, relative to good rows (0..0.5)
    files_per_cycle: int = 3

    def __post_init__(self) -> None:
        if self.teams < 1 or self.cycles < 1 or self.files_per_cycle < 1:
            raise ValueError("teams, cycles and files_per_cycle must be at least 1")
        if not 0.0 <= self.bad_share <= 0.5:
            raise ValueError(f"bad_share must be within 0..0.5, got {self.bad_share}")
        if self.as_of is not None and self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware (UTC)")


@dataclass(frozen=True)
class GeneratedData:
    files: dict[str, pd.DataFrame]   # file name -> text rows in contract column order
    ground_truth: pd.DataFrame       # one row per (key_result_id, cycle_id) with a check-in so far
    as_of: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    config: GeneratorConfig = field(default_factory=GeneratorConfig)


def _quarters(as_of: dt.date, count: int) -> list[Cycle]:
    """The ``count`` calendar quarters ending with the one containing ``as_of``."""
    current = as_of.year * 4 + (as_of.month - 1) // 3
    return [_quarter(q) for q in range(current - count + 1, current + 1)]


def _quarter(q: int) -> Cycle:
    year, idx = divmod(q, 4)
    start = dt.date(year, 3 * idx + 1, 1)
    end = dt.date(year + (idx == 3), (3 * idx + 3) % 12 + 1, 1) - dt.timedelta(days=1)
    return f"{year}-Q{idx + 1}", start, end, q


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _fmt_time(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _schedule(rng: np.random.Generator, start: dt.date, end: dt.date) -> list[dt.datetime]:
    """Check-in times of one KR: first within 10 days, lognormal gaps, last at most 7 days late."""
    origin = _midnight(start)
    stop = _midnight(end) + dt.timedelta(days=float(rng.uniform(0, 7)))
    if rng.random() < SILENT_SHARE:  # goes silent part-way through the cycle
        stop = origin + (stop - origin) * float(rng.uniform(0.3, 0.8))
    t = origin + dt.timedelta(days=float(rng.uniform(0, 10)))
    times = []
    while t <= stop:
        times.append(t.replace(microsecond=0))  # what the export shows is what the model used
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
        # value = floor(progress*N), so score >= 0.7 needs progress >= ceil(0.7*N)/N
        return kind, unit, 0.0, float(n), "increase", math.ceil(DEFAULT_TARGET_SCORE * n - 1e-9) / n
    if kind == "percent":
        start, span = round(float(rng.uniform(0, 50)), 1), round(float(rng.uniform(10, 45)), 1)
    else:
        scale = {"numeric": 1000.0, "currency": 100000.0}[kind]
        start = round(float(rng.uniform(0, scale)), 0)
        span = round(float(rng.uniform(0.2, 1.0)) * scale, 0) + 10
    if rng.random() < DECREASE_SHARE:  # e.g. "cut churn from 12.5 to 8"
        return kind, unit, start + span, start, "decrease", DEFAULT_TARGET_SCORE
    return kind, unit, start, start + span, "increase", DEFAULT_TARGET_SCORE


def _value(kind: str, start: float, target: float, progress: float) -> float:
    if kind == "boolean":
        return 1.0 if progress >= DEFAULT_TARGET_SCORE else 0.0
    if kind == "milestone":
        return float(math.floor(min(max(progress, 0.0), 1.0) * target + 1e-9))
    return round(start + progress * (target - start), 2)


def _status(rng: np.random.Generator, progress: float, elapsed: float, not_started: bool) -> str:
    if not_started:
        status = "not_started"
    elif progress >= 1:
        status = "achieved"
    else:
        gap = progress - elapsed
        status = "on_track" if gap > -0.1 else "at_risk" if gap > -0.25 else "off_track"
    if rng.random() < SYNONYM_SHARE:  # OKR tools export human spellings now and then
        options = _SYNONYMS[status]
        return options[int(rng.integers(len(options)))]
    return status


def _team_effect(seed: int, team: int) -> float:
    """Normal team effects, but spread evenly (golden-ratio sequence of quantiles from a seeded
    offset) instead of drawn independently: with only a few teams, independent draws shift the
    whole dataset's success rate by several points from seed to seed. Team i's effect depends on
    (seed, i) only, so adding teams never changes existing ones."""
    offset = float(np.random.default_rng([seed, 0]).random())
    quantile = (offset + team * _GOLDEN) % 1.0
    return TEAM_EFFECT_SD * _STD_NORMAL.inv_cdf(min(max(quantile, 1e-6), 1 - 1e-6))


def _key_results(seed: int, team: int, cycle: Cycle,
                 team_effect: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Full-timeline check-in rows and ground truth of one team in one cycle.

    One generator per (seed, team, quarter) keeps a cycle's data independent of ``as_of`` and
    of how many cycles are requested."""
    cycle_id, start, end, quarter = cycle
    rng = np.random.default_rng([seed, team, quarter])
    team_id = f"team-s{seed}-{team:02d}"
    rows: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    cycle_days = (end - start).days + 1
    origin = _midnight(start)
    base = {"org_id": f"org-s{seed}", "team_id": team_id, "cycle_id": cycle_id,
            "cycle_start": start.isoformat(), "cycle_end": end.isoformat()}
    for o in range(int(rng.integers(2, 5))):
        objective_id = f"obj-s{seed}-{cycle_id}-t{team:02d}-o{o}"
        okr_kind = "aspirational" if rng.random() < ASPIRATIONAL_SHARE else "committed"
        title = _OBJECTIVES[int(rng.integers(len(_OBJECTIVES)))]
        n_krs = int(rng.choice([2, 3, 3, 3, 4, 5]))
        for k in range(n_krs):
            kr_id = f"kr-s{seed}-{cycle_id}-t{team:02d}-o{o}-k{k}"
            kind, unit, v0, v1, direction, threshold = _metric(rng)
            mu = BASE_DRIFT + team_effect + KIND_EFFECT[okr_kind] + float(rng.normal(0, DRIFT_NOISE_SD))
            weight = float(rng.choice([1.0, 1.0, 1.0, 0.5, 0.25]))
            owner = f"user-s{seed}-t{team:02d}-{int(rng.integers(1, 6))}"
            kr_title = _KRS[int(rng.integers(len(_KRS)))]
            times = _schedule(rng, start, end)
            progress, t_prev = 0.0, 0.0
            for n, ts in enumerate(times):
                t = (ts - origin).total_seconds() / WEEK_SECONDS
                progress += float(rng.normal(mu * (t - t_prev), SIGMA * math.sqrt(max(t - t_prev, 1e-9))))
                t_prev = t
                # Half of the early first check-ins still report the start value ("not started yet").
                # Never on the last check-in, whose value must follow the latent path exactly.
                at_start = n == 0 and len(times) > 1 and t < 1 and rng.random() < 0.5
                reported = 0.0 if at_start else progress
                value = _value(kind, v0, v1, reported)
                elapsed = min(max((ts - origin).days / cycle_days, 0.0), 1.0)
                confidence: int | None
                if n == 0:
                    confidence = 5 if rng.random() < FIRST_CONFIDENCE_5_SHARE else int(rng.choice([3, 4, 6, 7, 8]))
                else:
                    confidence = int(np.clip(round(5 + 8 * (reported - 0.9 * elapsed) + rng.normal(0, 1)), 0, 10))
                    if rng.random() < EMPTY_CONFIDENCE_SHARE:
                        confidence = None
                comment = (None if rng.random() < _EMPTY_COMMENT_SHARE
                           else _COMMENTS[int(rng.integers(len(_COMMENTS)))])
                rows.append({
                    **base, "objective_id": objective_id, "objective_title": title, "okr_kind": okr_kind,
                    "key_result_id": kr_id, "kr_title": kr_title, "owner_id": owner, "metric_kind": kind,
                    "direction": direction, "unit": unit, "start_value": v0, "target_value": v1,
                    "weight": weight, "checkin_id": f"ci-s{seed}-{cycle_id}-t{team:02d}-o{o}-k{k}-{n:02d}",
                    "checkin_at": _fmt_time(ts), "value": value,
                    "confidence": None if confidence is None else str(confidence),
                    # status follows what the export shows (a boolean at 1 is achieved)
                    "status": _status(rng, (value - v0) / (v1 - v0), elapsed, n == 0 and value == v0),
                    "comment": comment, "_ts": ts,
                })
            t_last = max(t_prev, 1e-6)
            truth.append({
                "key_result_id": kr_id, "cycle_id": cycle_id, "team_id": team_id, "okr_kind": okr_kind,
                "metric_kind": kind, "mu": mu, "sigma": SIGMA, "t_last_weeks": t_last, "threshold": threshold,
                "p_reach": 1 - _phi((threshold - mu * t_last) / (SIGMA * math.sqrt(t_last))),
                "reached": bool(progress >= threshold - 1e-9),
                "final_score": float(min(max(progress, 0.0), 1.0)),
                "planned_last_checkin_at": _fmt_time(times[-1]),
                "_first_ts": times[0], "_last_ts": times[-1],
            })
    return rows, truth


def _bad_row(rng: np.random.Generator, base: dict[str, Any], reason: RejectReason, i: int, seed: int,
             as_of: dt.datetime) -> dict[str, Any]:
    """A copy of a good row broken the way real exports break, so that ``reason`` is the first
    validator rule it fails. ``i`` (the global bad-row index) picks the variant and is the id's
    suffix, so a test can recover the intended reason as ``BAD_REASONS[i % len(BAD_REASONS)]``."""
    row = {**base, "checkin_id": f"ci-s{seed}-{base['cycle_id']}-bad-{i:05d}"}
    start = dt.date.fromisoformat(base["cycle_start"])
    end = dt.date.fromisoformat(base["cycle_end"])
    v0, v1 = float(base["start_value"]), float(base["target_value"])
    variant = i // len(BAD_REASONS)  # successive rows of one reason rotate through its variants
    seconds = dt.timedelta(seconds=int(rng.integers(0, 86400)))
    match reason:
        case RejectReason.MISSING_REQUIRED:
            row[("team_id", "key_result_id", "value", "checkin_at", "owner_id", "cycle_end")[variant % 6]] = None
        case RejectReason.UNPARSEABLE_NUMBER:
            row[("value", "value", "value", "start_value", "weight")[variant % 5]] = (
                "12,5", "NaN", "inf", "n/a", "1/2")[variant % 5]
        case RejectReason.UNPARSEABLE_DATE:
            column, text = (("checkin_at", "last tuesday"), ("checkin_at", "2025-13-45T25:00:00Z"),
                            ("checkin_at", "07/08/2025 10:00"),
                            ("checkin_at", str(base["checkin_at"]).replace("T", " ").rstrip("Z")),  # no offset
                            ("cycle_end", end.strftime("%d.%m.%Y")))[variant % 5]
            row[column] = text
        case RejectReason.UNKNOWN_ENUM:
            column, text = (("status", "maybe"), ("status", "green"), ("okr_kind", "stretch goal"),
                            ("metric_kind", "ratio"), ("direction", "sideways"))[variant % 5]
            row[column] = text
        case RejectReason.INVALID_CYCLE:  # start and end swapped by hand
            row["cycle_start"], row["cycle_end"] = base["cycle_end"], base["cycle_start"]
        case RejectReason.START_EQUALS_TARGET:
            row["target_value"] = row["start_value"]
        case RejectReason.DIRECTION_CONTRADICTION:
            row["direction"] = "decrease" if base["direction"] == "increase" else "increase"
        case RejectReason.CONFIDENCE_OUT_OF_RANGE:
            row["confidence"] = ("11", "7.5", "-1", "70")[variant % 4]
        case RejectReason.WEIGHT_OUT_OF_RANGE:
            row["weight"] = ("1.5", "0", "-0.2", "100")[variant % 4]
        case RejectReason.CHECKIN_IN_FUTURE:  # far enough ahead that any later ingestion still sees it
            row["checkin_at"] = _fmt_time(as_of + dt.timedelta(days=30) + seconds)
        case RejectReason.BEFORE_FIRST_PARTITION:
            # a stale row from the quarter before the first partition, with that quarter's dates so
            # no earlier rule fires
            q_id, q_start, q_end, _ = _quarter(FIRST_PARTITION.year * 4 + (FIRST_PARTITION.month - 1) // 3 - 1)
            day = q_start + dt.timedelta(days=int(rng.integers(0, (q_end - q_start).days + 1)))
            row.update(cycle_id=q_id, cycle_start=q_start.isoformat(), cycle_end=q_end.isoformat(),
                       checkin_at=_fmt_time(_midnight(day) + seconds))
        case RejectReason.OUTSIDE_CYCLE:
            # filed under the wrong cycle: 3-6 weeks after its end, or before its start when that
            # would be after as_of
            off = dt.timedelta(days=CYCLE_GRACE_DAYS + 7 + int(rng.integers(0, 21))) + seconds
            late = _midnight(end) + off
            row["checkin_at"] = _fmt_time(late if late <= as_of else _midnight(start) - off)
        case RejectReason.PROGRESS_OUT_OF_RANGE:  # a unit error: value typed in the wrong scale
            row["value"] = round(v0 + float(rng.uniform(6, 9)) * (v1 - v0), 2)
    return row


def generate(config: GeneratorConfig) -> GeneratedData:
    """Generate the exports and ground truth for ``config`` (byte-identical for the same config)."""
    as_of = (config.as_of or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    cycles = _quarters(as_of.date(), config.cycles)
    rows: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    for team in range(1, config.teams + 1):
        team_effect = _team_effect(config.seed, team)
        for cycle in cycles:
            r, t = _key_results(config.seed, team, cycle, team_effect)
            rows += r
            truth += t
    frame = pd.DataFrame(rows)
    frame = frame[frame["_ts"] <= as_of]

    # Only KRs visible in the exports; open ones keep p_reach for their planned last check-in.
    gt = pd.DataFrame(truth)
    gt = gt[gt["_first_ts"] <= as_of].copy()
    gt["complete"] = gt["_last_ts"] <= as_of
    gt = gt.drop(columns=["_first_ts", "_last_ts"]).reset_index(drop=True)

    files: dict[str, pd.DataFrame] = {}
    bad_rng = np.random.default_rng([config.seed, 99])
    bad_index = 0
    for cycle_id, start, end, _ in cycles:
        in_cycle = frame[frame["cycle_id"] == cycle_id]
        origin = _midnight(start)
        span = _midnight(end) + dt.timedelta(days=8) - origin  # last check-ins may come 7 days late
        for k in range(config.files_per_cycle):
            lo = origin + span * k / config.files_per_cycle - (OVERLAP if k else dt.timedelta(0))
            hi = origin + span * (k + 1) / config.files_per_cycle
            part = in_cycle[(in_cycle["_ts"] >= lo) & (in_cycle["_ts"] < hi)].sort_values(["_ts", "checkin_id"])
            if part.empty:
                continue
            records = part.drop(columns="_ts").to_dict("records")
            good = list(records)
            for _ in range(round(config.bad_share * len(good))):
                base = good[int(bad_rng.integers(len(good)))]
                bad = _bad_row(bad_rng, base, BAD_REASONS[bad_index % len(BAD_REASONS)], bad_index,
                               config.seed, as_of)
                records.insert(int(bad_rng.integers(len(records) + 1)), bad)
                bad_index += 1
            out = pd.DataFrame(records).reindex(columns=list(CHECKIN_COLUMNS))
            files[f"okr_checkins_s{config.seed}_{cycle_id}_part{k + 1}.csv"] = out.reset_index(drop=True)
    return GeneratedData(files=files, ground_truth=gt, as_of=as_of, config=config)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name then rename: the folder sensor never sees half a file (and only
    looks at *.csv, so it ignores ``*.csv.tmp``)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_if_changed(path: Path, content: bytes) -> None:
    # An unchanged file keeps its mtime, so the landing sensor does not see a new version.
    if not (path.exists() and path.read_bytes() == content):
        _atomic_write(path, content)


def write_dataset(data: GeneratedData, out_dir: Path, seed: int) -> list[Path]:
    """Add the CSV exports and the ground-truth JSON to ``out_dir`` (never deletes anything);
    returns the CSV paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in data.files.items():
        path = out_dir / name
        _write_if_changed(path, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        paths.append(path)
    config = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in asdict(data.config).items()}
    header = {"seed": seed, "as_of": data.as_of.isoformat(), "threshold_score": DEFAULT_TARGET_SCORE,
              "model": "progress(t) = mu*t + sigma*W(t), t in weeks; "
                       "p_reach = 1 - Phi((threshold - mu*t_last) / (sigma*sqrt(t_last)))",
              "parameters": {"base_drift": BASE_DRIFT, "team_effect_sd": TEAM_EFFECT_SD,
                             "kind_effect": KIND_EFFECT, "drift_noise_sd": DRIFT_NOISE_SD, "sigma": SIGMA,
                             "gap_median_days": GAP_MEDIAN_DAYS, "gap_log_sd": GAP_LOG_SD,
                             "silent_share": SILENT_SHARE},
              "config": config}
    truth = {"header": header, "key_results": data.ground_truth.to_dict("records")}
    _write_if_changed(out_dir / f"okr_ground_truth_s{seed}.json",
                      json.dumps(truth, indent=1).encode("utf-8"))
    return paths
