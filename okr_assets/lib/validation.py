"""Turn landed text rows into typed check-ins, rejecting every row that breaks the contract.

Pure pandas, no Dagster: ``validate_checkins`` checks rows against the contract and is what the
unit tests pin rule by rule; ``validate_versions``, what ``okr_processed`` runs a month at a time,
adds deduplication (the newest valid version of a check-in wins). Rules are applied in a fixed
order and a row is rejected with the *first* rule it breaks (one reason code plus a human
sentence), so counts by reason add up to the number of rejected rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from okr_assets.lib.contract import (
    CHECKIN_COLUMNS,
    CONFIDENCE_MAX,
    CONFIDENCE_MIN,
    CYCLE_GRACE_DAYS,
    DATE_COLUMNS,
    ENUMS,
    FUTURE_TOLERANCE_SECONDS,
    MAX_ABS_PROGRESS,
    NUMERIC_COLUMNS,
    REQUIRED_COLUMNS,
    RejectReason,
    enum_lookup,
)

LINEAGE_COLUMNS: tuple[str, ...] = ("raw_id", "source", "source_ref", "ingested_at", "partition_date")

PROCESSED_COLUMNS: tuple[str, ...] = (
    "checkin_id", "org_id", "team_id", "cycle_id", "cycle_start", "cycle_end", "objective_id",
    "objective_title", "okr_kind", "key_result_id", "kr_title", "owner_id", "metric_kind",
    "direction", "unit", "start_value", "target_value", "weight", "checkin_at", "checkin_date",
    "value", "confidence", "status", "comment", "progress", "score",
    "raw_id", "source", "source_ref", "ingested_at",
)

REJECT_COLUMNS: tuple[str, ...] = (
    *LINEAGE_COLUMNS, "reason", "message", *CHECKIN_COLUMNS, "raw_payload",
)

_RFC3339_OFFSET = r"(?:[Zz]|[+-]\d{2}:\d{2})$"


@dataclass(frozen=True)
class ValidationResult:
    accepted: pd.DataFrame
    rejects: pd.DataFrame


# ---------------------------------------------------------------------------------------------
# Parsers shared with landing (partition routing) and the Kafka path
# ---------------------------------------------------------------------------------------------


def clean_text(series: pd.Series) -> pd.Series:
    """Strip surrounding whitespace; an empty field is null. Text already held as pandas
    ``string`` keeps its storage (Arrow-backed text is stripped in C++, several times faster)."""
    text = series if isinstance(series.dtype, pd.StringDtype) else series.astype("string")
    stripped = text.str.strip()
    return stripped.mask(stripped == "")


def parse_timestamp(series: pd.Series) -> pd.Series:
    """Parse RFC 3339 timestamps to UTC; anything without an explicit offset is NaT."""
    text = clean_text(series)
    has_offset = text.str.contains(_RFC3339_OFFSET, regex=True, na=False)
    parsed = pd.to_datetime(text.where(has_offset), utc=True, format="ISO8601", errors="coerce")
    return parsed


def parse_date(series: pd.Series) -> pd.Series:
    text = clean_text(series)
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")


def parse_number(series: pd.Series) -> pd.Series:
    """Parse with '.' as decimal point; NaN and +/-Inf count as unparseable (NaN)."""
    numbers = pd.to_numeric(clean_text(series), errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


def compute_progress(value: pd.Series, start: pd.Series, target: pd.Series) -> pd.Series:
    """progress = (value - start) / (target - start), not clipped."""
    return (value - start) / (target - start)


def compute_score(progress: pd.Series) -> pd.Series:
    return progress.clip(lower=0.0, upper=1.0)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


class _Verdicts:
    """Collects the first failing rule per row."""

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series(pd.NA, index=index, dtype="string")
        self.message = pd.Series(pd.NA, index=index, dtype="string")

    def open(self) -> pd.Series:
        return self.reason.isna()

    def reject(self, mask: pd.Series, reason: RejectReason,
               message: str | Callable[[pd.Series], pd.Series]) -> None:
        """``message``: a sentence, or a function of the rows hit (a boolean mask) returning
        their sentences; only those rows are formatted, which matters when few rows fail."""
        hit = mask.fillna(False).astype(bool) & self.open()
        if not hit.any():
            return
        self.reason[hit] = reason.value
        if isinstance(message, str):
            self.message[hit] = message
        else:
            self.message[hit] = message(hit).astype("string")


def _fmt(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("<empty>")


def validate_checkins(
    raw: pd.DataFrame, first_partition: dt.date
) -> ValidationResult:
    """Validate landed rows (text columns plus lineage) against the contract.

    ``raw`` needs the contract columns, the lineage columns, and optionally ``landing_error``,
    ``landing_error_message`` and ``raw_payload`` (set by the reader for rows it could not split).
    The reference time for "in the future" is each row's own ``ingested_at``, which keeps the
    result deterministic when a partition is re-processed later.
    """
    missing = [c for c in (*CHECKIN_COLUMNS, *LINEAGE_COLUMNS) if c not in raw]
    raw = raw.reset_index(drop=True).reindex(columns=[*raw.columns, *missing])
    v = _Verdicts(raw.index)
    text = {c: clean_text(raw[c]) for c in CHECKIN_COLUMNS}

    if "landing_error" in raw:
        err = raw["landing_error"].astype("string")
        for code in err.dropna().unique():
            v.reject(err == code, RejectReason(code), lambda m: raw["landing_error_message"][m].astype("string"))

    for col in REQUIRED_COLUMNS:
        v.reject(text[col].isna(), RejectReason.MISSING_REQUIRED,
                 f"required field '{col}' is missing")

    numbers = {c: parse_number(raw[c]) for c in (*NUMERIC_COLUMNS, "confidence")}
    for col in (*NUMERIC_COLUMNS, "confidence"):
        bad = text[col].notna() & numbers[col].isna()
        v.reject(bad, RejectReason.UNPARSEABLE_NUMBER,
                 lambda m, col=col: f"{col} '" + _fmt(text[col][m]) + "' is not a finite number")

    dates = {c: parse_date(raw[c]) for c in DATE_COLUMNS}
    checkin_at = parse_timestamp(raw["checkin_at"])
    for col, parsed in (*dates.items(), ("checkin_at", checkin_at)):
        bad = text[col].notna() & parsed.isna()
        expected = "an RFC 3339 timestamp with offset" if col == "checkin_at" else "a YYYY-MM-DD date"
        v.reject(bad, RejectReason.UNPARSEABLE_DATE,
                 lambda m, col=col, expected=expected: f"{col} '" + _fmt(text[col][m]) + f"' is not {expected}")

    enums: dict[str, pd.Series] = {}
    for col, allowed in ENUMS.items():
        squashed = text[col].str.lower().str.replace(r"[\s_\-]+", "", regex=True)
        enums[col] = squashed.map(enum_lookup(col)).astype("string")
        bad = text[col].notna() & enums[col].isna()
        v.reject(bad, RejectReason.UNKNOWN_ENUM,
                 lambda m, col=col, allowed=allowed: f"{col} '" + _fmt(text[col][m])
                 + f"' is not one of {', '.join(allowed)}")

    start, target = numbers["start_value"], numbers["target_value"]
    cycle_start, cycle_end = dates["cycle_start"], dates["cycle_end"]
    v.reject(cycle_end < cycle_start, RejectReason.INVALID_CYCLE,
             lambda m: "cycle_end " + _fmt(text["cycle_end"][m]) + " is before cycle_start "
             + _fmt(text["cycle_start"][m]))
    v.reject(start == target, RejectReason.START_EQUALS_TARGET,
             lambda m: "start_value equals target_value (" + _fmt(text["start_value"][m]) + ")")
    direction = enums["direction"]
    contradicts = ((direction == "increase") & (target < start)) | (
        (direction == "decrease") & (target > start))
    v.reject(contradicts, RejectReason.DIRECTION_CONTRADICTION,
             lambda m: "direction '" + _fmt(direction[m]) + "' contradicts start_value "
             + _fmt(text["start_value"][m]) + " and target_value " + _fmt(text["target_value"][m]))

    confidence = numbers["confidence"]
    bad_conf = confidence.notna() & (
        (confidence < CONFIDENCE_MIN) | (confidence > CONFIDENCE_MAX) | (confidence % 1 != 0))
    v.reject(bad_conf, RejectReason.CONFIDENCE_OUT_OF_RANGE,
             lambda m: "confidence " + _fmt(text["confidence"][m]) + " is not an integer between 0 and 10")
    weight = numbers["weight"]
    v.reject((weight <= 0) | (weight > 1), RejectReason.WEIGHT_OUT_OF_RANGE,
             lambda m: "weight " + _fmt(text["weight"][m]) + " is outside (0, 1]")

    ingested_at = pd.to_datetime(raw["ingested_at"], utc=True)
    future = checkin_at > ingested_at + pd.Timedelta(seconds=FUTURE_TOLERANCE_SECONDS)
    v.reject(future, RejectReason.CHECKIN_IN_FUTURE,
             lambda m: "checkin_at " + _fmt(text["checkin_at"][m]) + " is more than 5 minutes after ingestion at "
             + ingested_at[m].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("string"))
    checkin_day = checkin_at.dt.tz_convert(None).dt.normalize()
    v.reject(checkin_day < pd.Timestamp(first_partition), RejectReason.BEFORE_FIRST_PARTITION,
             lambda m: "checkin_at " + _fmt(text["checkin_at"][m])
             + f" is before the first partition {first_partition}")
    grace = pd.Timedelta(days=CYCLE_GRACE_DAYS)
    outside = (checkin_day < cycle_start - grace) | (checkin_day > cycle_end + grace)
    v.reject(outside, RejectReason.OUTSIDE_CYCLE,
             lambda m: "checkin_at " + _fmt(text["checkin_at"][m]) + " is more than 14 days outside cycle "
             + _fmt(text["cycle_start"][m]) + ".." + _fmt(text["cycle_end"][m]))

    value = numbers["value"]
    progress = compute_progress(value, start, target)
    v.reject(progress.abs() > MAX_ABS_PROGRESS, RejectReason.PROGRESS_OUT_OF_RANGE,
             lambda m: "progress " + progress[m].round(2).astype("string").fillna("?")
             + " is beyond +/-5 (value " + _fmt(text["value"][m]) + "), likely a unit error")

    ok = v.open()
    accepted = pd.DataFrame(
        {
            **{c: text[c][ok] for c in ("checkin_id", "org_id", "team_id", "cycle_id",
                                        "objective_id", "objective_title", "key_result_id",
                                        "kr_title", "owner_id", "unit", "comment")},
            "cycle_start": cycle_start[ok],
            "cycle_end": cycle_end[ok],
            **{c: enums[c][ok] for c in ENUMS},
            "start_value": start[ok],
            "target_value": target[ok],
            "weight": weight[ok],
            "checkin_at": checkin_at[ok],
            "checkin_date": checkin_day[ok],
            "value": value[ok],
            "confidence": confidence[ok].astype("Int64"),
            "progress": progress[ok],
            "score": compute_score(progress[ok]),
            "raw_id": raw["raw_id"][ok].astype("int64"),
            "source": raw["source"][ok].astype("string"),
            "source_ref": raw["source_ref"][ok].astype("string"),
            "ingested_at": ingested_at[ok],
        }
    )[list(PROCESSED_COLUMNS)].reset_index(drop=True)

    bad = ~ok
    rejects = raw.loc[bad, [c for c in LINEAGE_COLUMNS if c in raw]].copy()
    rejects["reason"] = v.reason[bad]
    rejects["message"] = v.message[bad]
    for col in CHECKIN_COLUMNS:
        rejects[col] = raw.loc[bad, col].astype("string")
    rejects["raw_payload"] = (raw.loc[bad, "raw_payload"].astype("string")
                              if "raw_payload" in raw else pd.NA)
    rejects = rejects.reindex(columns=list(REJECT_COLUMNS)).reset_index(drop=True)
    return ValidationResult(accepted=_python_text(accepted), rejects=_python_text(rejects))


def _python_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as the default ``string`` dtype the Pandera models declare, whatever the
    storage of the input was."""
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.StringDtype) and frame[col].dtype.storage != "python":
            frame[col] = frame[col].astype(pd.StringDtype("python"))
    return frame


# ---------------------------------------------------------------------------------------------
# Versions of a check-in
# ---------------------------------------------------------------------------------------------

# The kinds of deduplicated row: an older version, valid or not, of a check-in that has a newer
# valid version. An invalid newer version never supersedes anything: it is rejected.
SUPERSEDED_VALID = "valid version superseded by a newer valid one"
SUPERSEDED_INVALID = "invalid version superseded by a newer valid one"
SUPERSESSION_KINDS: tuple[str, ...] = (SUPERSEDED_VALID, SUPERSEDED_INVALID)


@dataclass(frozen=True)
class VersionedResult:
    """Where each row of a batch goes: ``accepted`` (the newest valid version of its check-in),
    ``rejects`` (invalid and not older than a valid version) or ``superseded`` (older than its
    check-in's newest valid version: the landed row plus ``supersession``, one of
    ``SUPERSESSION_KINDS``). ``rejected_over_valid`` counts the rejects that are newer than a
    valid version of the same check-in, which stays accepted."""

    accepted: pd.DataFrame
    rejects: pd.DataFrame
    superseded: pd.DataFrame
    rejected_over_valid: int

    def deduplicated_by_kind(self) -> dict[str, int]:
        counts = self.superseded["supersession"].value_counts()
        return {kind: int(counts.get(kind, 0)) for kind in SUPERSESSION_KINDS}


def newest_valid_versions(*accepted: pd.DataFrame) -> pd.Series:
    """The winning ``raw_id`` per ``checkin_id`` (stripped, as ``validate_checkins`` accepts it):
    the highest among the accepted versions given; ``raw_id`` grows with ingestion order."""
    frames = [a[["checkin_id", "raw_id"]] for a in accepted if len(a)]
    if not frames:
        return pd.Series(dtype="int64")
    versions = pd.concat(frames, ignore_index=True)
    return versions.groupby("checkin_id")["raw_id"].max()


def validate_versions(
    raw: pd.DataFrame, first_partition: dt.date, other_versions: pd.DataFrame | None = None
) -> VersionedResult:
    """Validate landed rows and keep the newest *valid* version of each check-in.

    Every version is validated on its own (``validate_checkins``). Per stripped ``checkin_id``
    the winner is the valid version with the highest ``raw_id``, among ``raw`` and
    ``other_versions`` (the same check-ins' versions landed elsewhere, e.g. in other partitions:
    they only decide the winner, none of them is returned). Versions older than the winner,
    valid or not, are superseded; invalid versions newer than it, or of a check-in without a valid
    version, are rejected, so a broken re-export never takes a good check-in out. Rows without a
    ``checkin_id`` are never superseded (they are rejected as incomplete). ``raw_id`` must be
    unique across both frames, as it is in okr_raw.
    """
    own = validate_checkins(raw, first_partition)
    valid = [own.accepted]
    if other_versions is not None and len(other_versions):
        valid.append(validate_checkins(other_versions, first_partition).accepted)
    winner = newest_valid_versions(*valid)
    raw_ids = raw["raw_id"].astype("int64").to_numpy()
    newest = clean_text(raw["checkin_id"]).map(winner).astype("float64").to_numpy()
    older = newest > raw_ids  # False where the check-in has no valid version (NaN)
    superseded = raw[older].reset_index(drop=True)
    was_valid = np.isin(superseded["raw_id"].astype("int64").to_numpy(), own.accepted["raw_id"].to_numpy())
    superseded["supersession"] = np.where(was_valid, SUPERSEDED_VALID, SUPERSEDED_INVALID)
    gone = raw_ids[older]
    accepted = own.accepted[~own.accepted["raw_id"].isin(gone)].reset_index(drop=True)
    rejects = own.rejects[~own.rejects["raw_id"].isin(gone)].reset_index(drop=True)
    over_valid = clean_text(rejects["checkin_id"]).map(winner).notna()
    return VersionedResult(accepted=accepted, rejects=rejects, superseded=superseded,
                           rejected_over_valid=int(over_valid.sum()))
