"""Turn landed text rows into typed check-ins, rejecting every row that breaks the contract.

Ibis expressions, run by the warehouse engine where okr_raw is (okr_processed, okr_rejects):

- ``parsed`` types a landed row's text: numbers, dates and timestamps by a grammar the engine
  checks before it casts (so a value no engine can cast is a reject, never a failed statement, and
  DuckDB and PostgreSQL accept exactly the same text), enums through the contract's synonyms;
- ``verdicts`` adds the first rule of ``okr_assets.lib.rules.RULES`` each row breaks, as a reason
  code and a sentence;
- ``versions`` keeps the newest *valid* version of each check-in and says what happens to every
  other row (``outcome``).

``validate_checkins`` and ``validate_versions`` run the same expressions on DataFrames (an
in-memory DuckDB, ``okr_assets.lib.engine``), for the model's code, the generator and the tests
that pin the contract rule by rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from okr_assets.lib.contract import (
    CHECKIN_COLUMNS,
    DATE_COLUMNS,
    ENUMS,
    FUTURE_TOLERANCE_SECONDS,
    NUMERIC_COLUMNS,
    RFC3339_PATTERN,
    enum_lookup,
)
from okr_assets.lib.rules import RULES, TEXT

if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir
    import pandas as pd

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

LANDED = "landed_"  # prefix of a contract column exactly as landed (what okr_rejects keeps)

# The kinds of deduplicated row: an older version, valid or not, of a check-in that has a newer
# valid version. An invalid newer version never supersedes anything: it is rejected.
ACCEPTED = "accepted"
REJECTED = "rejected"
SUPERSEDED_VALID = "valid version superseded by a newer valid one"
SUPERSEDED_INVALID = "invalid version superseded by a newer valid one"
SUPERSESSION_KINDS: tuple[str, ...] = (SUPERSEDED_VALID, SUPERSEDED_INVALID)

# Text the engine casts only after it matched: ``[0-9]``, not ``\d``, which PostgreSQL's regular
# expressions extend to other scripts' digits. Timestamps: the contract's RFC3339_PATTERN.
_NUMBER = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,4})?$"
_PLAIN_NUMBER = r"^[+-]?[0-9]{1,15}([.][0-9]*)?$"  # a _NUMBER that always fits a double (see _number)
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# The years pandas timestamps hold (1677-09-21 .. 2262-04-11, whole years inside): the model's code
# reads these columns into pandas.
_YEARS = (1678, 2261)
_MAX_OFFSET_HOURS = 15  # PostgreSQL refuses larger UTC offsets; real ones reach +14:00
_MAX_MAGNITUDE = 300  # decimal orders of magnitude either side of 1 (a double holds about 308)


# ---------------------------------------------------------------------------------------------
# Typing landed text
# ---------------------------------------------------------------------------------------------


def clean(text: ir.StringValue) -> ir.StringValue:
    """Surrounding whitespace stripped; an empty field is null."""
    return text.strip().nullif("")


def _int(text: ir.StringValue) -> ir.IntegerValue:
    return text.cast("int64")


def _null() -> ir.StringValue:
    import ibis

    return ibis.null("string")


# Typing runs in a few stages, each one projection over the previous one's columns: Ibis writes a
# value out in full wherever it is used, so a parsed part that several tests read (the matched
# text, a number's digits) is a column of its own rather than an expression repeated through the
# SQL. Each parser gives its columns per stage; ``parsed`` runs the parsers' stages side by side
# (fewer projections compile faster).
Stage = Callable[["ir.Table"], dict[str, "ir.Value"]]


def _number(c: str) -> list[Stage]:
    """A decimal number with '.' as the point (an exponent allowed) within 10^±300; anything else,
    NaN and infinities included, is null. The magnitude is bounded from the digits before the cast
    because PostgreSQL refuses to cast a number a double cannot hold, where DuckDB would give
    infinity or zero. Most numbers are plain (``_PLAIN_NUMBER``: no exponent, at most 15 digits
    before the point, 300 characters in all), which always fit; the digits of the others are
    counted only for them (a CASE branch runs on its own rows only: the counting regexes cost
    ~1 s per million values and column)."""
    n, p, w, f, z, e = (f"_{k}_{c}" for k in "npwfze")

    def fits(t: ir.Table) -> ir.BooleanValue:
        zero = (t[w] == 0) & (t[z] == t[f])
        magnitude = (t[w] > 0).ifelse(t[w] - 1, -t[z] - 1) + t[e]
        return t[p] | zero | (magnitude.between(-_MAX_MAGNITUDE, _MAX_MAGNITUDE)
                              & (t[n].length() <= _MAX_MAGNITUDE))

    def unless_plain(t: ir.Table, value: ir.Value) -> ir.Value:
        import ibis

        return t[p].ifelse(ibis.null(value.type()), value)

    def matched(t: ir.Table) -> dict[str, ir.Value]:
        text = t[TEXT + c]
        plain = text.re_search(_PLAIN_NUMBER) & (text.length() <= _MAX_MAGNITUDE)
        return {p: plain.fill_null(False),
                n: plain.ifelse(text, text.re_search(_NUMBER).ifelse(text, _null()))}

    return [
        matched,
        lambda t: {  # digits before the point (no leading zeros), after it, zeros right after it; exponent
            w: unless_plain(t, t[n].re_extract(r"^[+-]?([0-9]*)", 1).re_replace(r"^0+", "").length()),
            f: unless_plain(t, t[n].re_extract(r"[.]([0-9]*)", 1).coalesce("").length()),
            z: unless_plain(t, t[n].re_extract(r"[.](0*)", 1).coalesce("").length()),
            e: unless_plain(t, t[n].re_extract(r"[eE]([+-]?[0-9]+)$", 1).nullif("").cast("int64").coalesce(0)),
        },
        lambda t: {c: fits(t).ifelse(t[n], _null()).cast("float64")},
    ]


def _days_in_month(year: ir.IntegerValue, month: ir.IntegerValue) -> ir.IntegerValue:
    import ibis

    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    return ibis.cases((month == 2, leap.ifelse(29, 28)), (month.isin([4, 6, 9, 11]), 30), else_=31)


def _valid_day(day_text: ir.StringValue) -> ir.BooleanValue:
    """``YYYY-MM-DD`` (already matched) names a day of the calendar within ``_YEARS``."""
    year, month, day = _int(day_text.substr(0, 4)), _int(day_text.substr(5, 2)), _int(day_text.substr(8, 2))
    return (year.between(*_YEARS) & month.between(1, 12) & (day >= 1)
            & (day <= _days_in_month(year, month)))


def _date(c: str) -> list[Stage]:
    """A ``YYYY-MM-DD`` calendar day, else null."""
    d = f"_d_{c}"
    return [
        lambda t: {d: t[TEXT + c].re_search(_DATE).ifelse(t[TEXT + c], _null())},
        lambda t: {c: _valid_day(t[d]).ifelse(t[d], _null()).cast("date")},
    ]


def _timestamp(c: str) -> list[Stage]:
    """An RFC 3339 timestamp with an explicit offset (``Z`` or ``+HH:MM``; seconds optional;
    ``RFC3339_PATTERN``) as UTC, else null."""
    ts = f"_t_{c}"

    def typed(t: ir.Table) -> ir.TimestampValue:
        seconds = t[ts].re_extract(r"^.{16}:([0-9]{2})", 1).nullif("").cast("int64").coalesce(0)
        offset = t[ts].re_extract(r"([+-][0-9]{2}:[0-9]{2})$", 1).nullif("")
        offset_ok = offset.isnull() | (_int(offset.substr(1, 2)).between(0, _MAX_OFFSET_HOURS)
                                       & _int(offset.substr(4, 2)).between(0, 59))
        valid = (_valid_day(t[ts].substr(0, 10)) & _int(t[ts].substr(11, 2)).between(0, 23)
                 & _int(t[ts].substr(14, 2)).between(0, 59) & seconds.between(0, 59) & offset_ok)
        return valid.ifelse(t[ts], _null()).cast("timestamp('UTC')")

    return [
        lambda t: {ts: t[TEXT + c].re_search(RFC3339_PATTERN).ifelse(t[TEXT + c].upper(), _null())},
        lambda t: {c: typed(t)},
    ]


def routed(rows: ir.Table, first_partition: dt.date) -> ir.Table:
    """``rows`` (landed text with ``ingested_at``) with ``partition_date``: the UTC date of the row's
    ``checkin_at`` when that is a usable partition (it parses as the typing parses it, it is not
    before ``first_partition`` and not in the future), otherwise the UTC date it was ingested.
    Every row is therefore owned by exactly one okr_processed partition, which rejects it with its
    reason if it must; and since landing routes by the same parser that types the row, an accepted
    row's check-in date is always its partition's."""
    import ibis

    landed, text = "_routed_checkin_at", TEXT + "checkin_at"
    t = rows.mutate(**{landed: rows.checkin_at, text: clean(rows.checkin_at)})
    for stage in _timestamp("checkin_at"):
        t = t.mutate(**stage(t))
    at = t.checkin_at  # typed by the last stage
    usable = (at.notnull() & (at.date() >= ibis.date(first_partition))
              & (at <= t.ingested_at + ibis.interval(seconds=FUTURE_TOLERANCE_SECONDS)))
    t = t.mutate(partition_date=usable.ifelse(at.date(), t.ingested_at.date()))
    return t.mutate(checkin_at=t[landed]).drop(landed, text, *(c for c in t.columns if c.startswith("_t_")))


def parse_enum(column: str, text: ir.StringValue) -> ir.StringValue:
    """The canonical value of an enum column after case, spaces, '-' and '_' are ignored and the
    contract's synonyms applied; null when unknown."""
    squashed = text.lower().re_replace(r"[ \t\r\n\f\v_-]+", "")
    return squashed.substitute(enum_lookup(column), else_=_null())


_TEXT_COLUMNS = ("checkin_id", "org_id", "team_id", "cycle_id", "objective_id", "objective_title",
                 "key_result_id", "kr_title", "owner_id", "unit", "comment")


def parsed(raw: ir.Table) -> ir.Table:
    """okr_raw rows with their contract columns typed (okr_processed's names and types; null where
    a value does not parse), the stripped text as ``text_<column>`` and the landed text as
    ``landed_<column>``; ``checkin_date`` (UTC), ``progress`` and ``score`` derived."""
    from itertools import zip_longest

    t = raw.select(*(c for c in raw.columns if c not in CHECKIN_COLUMNS),
                   **{LANDED + c: raw[c] for c in CHECKIN_COLUMNS},
                   **{TEXT + c: clean(raw[c]) for c in CHECKIN_COLUMNS})
    parsers = [*(_number(c) for c in (*NUMERIC_COLUMNS, "confidence")), *(_date(c) for c in DATE_COLUMNS),
               _timestamp("checkin_at"),
               [lambda t: {**{c: t[TEXT + c] for c in _TEXT_COLUMNS},
                           **{c: parse_enum(c, t[TEXT + c]) for c in ENUMS}}]]
    before = set(t.columns)
    for stages in zip_longest(*parsers):
        t = t.mutate(**{name: value for stage in stages if stage for name, value in stage(t).items()})
    t = t.drop(*(c for c in t.columns if c.startswith("_") and c not in before))
    t = t.mutate(checkin_date=t.checkin_at.date(),
                 progress=(t.value - t.start_value) / (t.target_value - t.start_value).nullif(0))
    return t.mutate(score=t.progress.clip(0, 1))


# ---------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------


def verdicts(raw: ir.Table, first_partition: dt.date) -> ir.Table:
    """``parsed(raw)`` plus ``reason`` and ``message``: the first rule each row breaks (a reason
    the landing gave comes first), null for a valid row. Each rule's predicate is evaluated once:
    the index of the first broken rule picks the reason and the sentence."""
    import ibis

    rows = parsed(raw)
    first = ibis.cases(
        (rows.landing_error.notnull(), 0),
        *((rule.broken(rows, first_partition), i) for i, rule in enumerate(RULES, start=1)),
        else_=ibis.null("int64"),
    )
    rows = rows.mutate(_rule=first)
    return rows.mutate(
        reason=ibis.cases((rows._rule == 0, rows.landing_error),
                          *((rows._rule == i, rule.reason.value) for i, rule in enumerate(RULES, start=1)),
                          else_=ibis.null("string")),
        message=ibis.cases((rows._rule == 0, rows.landing_error_message.coalesce(rows.landing_error)),
                           *((rows._rule == i, rule.sentence(rows, first_partition))
                             for i, rule in enumerate(RULES, start=1)),
                           else_=ibis.null("string")),
    ).drop("_rule")


def versions(candidates: ir.Table, mine: Callable[[ir.Table], ir.BooleanValue], first_partition: dt.date
             ) -> ir.Table:
    """The verdicts of the rows of ``candidates`` where ``mine(candidates)`` holds, with ``outcome``: accepted
    (the newest valid version of its check-in), rejected (invalid and not older than a valid
    version), or superseded (``SUPERSESSION_KINDS``: older than its check-in's newest valid
    version); and ``over_valid``: a reject newer than a valid version, which stays accepted.

    ``candidates`` must hold, besides the rows to judge, every other version of their check-ins
    (the same stripped ``checkin_id``): they only decide the winner. The winner is the valid version
    with the highest ``raw_id`` (which grows with ingestion order). Rows without a ``checkin_id``
    are never superseded (they are rejected as incomplete)."""
    return decide(verdicts(candidates.mutate(_mine=mine(candidates)), first_partition))


def decide(judged: ir.Table) -> ir.Table:
    """``versions``' outcomes for ``verdicts`` rows (with ``_mine``). The winner of each check-in is
    a narrow aggregate joined back, not a window over the judged rows: a window carries every
    column of its input through its partitioning (for a million rows, 2.3 GB of landed and typed
    text that spilled past the engine's memory limit); an aggregate carries two columns."""
    import ibis

    valid = judged.filter(judged.reason.isnull() & judged.checkin_id.notnull())
    winners = valid.group_by(_winner_of=valid.checkin_id).aggregate(_winner=valid.raw_id.max())
    own = judged.filter(judged._mine)
    own = own.left_join(winners, own.checkin_id == winners._winner_of).drop("_winner_of")
    older = own.checkin_id.notnull() & own._winner.notnull() & (own._winner > own.raw_id)
    return own.mutate(
        outcome=ibis.cases((older & own.reason.isnull(), SUPERSEDED_VALID), (older, SUPERSEDED_INVALID),
                           (own.reason.isnull(), ACCEPTED), else_=REJECTED),
        over_valid=~older & own.reason.notnull() & own.checkin_id.notnull() & own._winner.notnull(),
    ).drop("_winner", "_mine")


CANDIDATES = "okr_candidates"  # the input of ``range_verdicts``, bound by the caller


def range_candidates(raw: ir.Table, start: dt.date, end: dt.date) -> ir.Table:
    """The okr_raw rows with ``start <= partition_date < end`` (``_mine``) and every other landed
    version of their check-ins (which only decide the winners)."""
    import ibis

    mine = (raw.partition_date >= ibis.date(start)) & (raw.partition_date < ibis.date(end))
    own = raw.filter(mine)
    keys = own.select(key=clean(own.checkin_id))
    # The range's rows, and apart from them the others matched against the range's ids: one
    # filter ``mine OR id IN keys`` makes the engine mark-join every landed row against the ids,
    # even when the range spans every partition and there are no others.
    others = raw.filter(~mine.fill_null(False))
    others = others.filter(clean(others.checkin_id).isin(keys.key))
    return own.mutate(_mine=mine).union(others.mutate(_mine=mine), distinct=False)


def range_verdicts(raw_schema: ibis.Schema, first_partition: dt.date) -> ir.Table:
    """``verdicts`` of a table ``okr_candidates`` (``range_candidates``'s rows, of okr_raw's schema
    plus ``_mine``), with what ``decide`` and the tables read of them. It does not depend on the
    range, so its SQL, which takes Ibis a second to compile, is compiled once per process and
    bound to each range's rows; the step computes it into a scratch table once."""
    import ibis

    candidates = ibis.table({**raw_schema, "_mine": "boolean"}, name=CANDIDATES)
    judged = verdicts(candidates, first_partition)
    # Only what ``decide`` and ``kept`` read: the landed text only of the rows a rule rejects (a
    # valid row's landed text is its typed values'), none of the parse's intermediate columns.
    return judged.select(
        *PROCESSED_COLUMNS, "partition_date", "reason", "message", "raw_payload", "_mine",
        **{LANDED + c: judged.reason.isnull().ifelse(_null(), judged[LANDED + c]) for c in CHECKIN_COLUMNS})


def kept(judged: ir.Table) -> ir.Table:
    """What the tables need of ``versions``: the processed columns, the reject columns (the landed
    text only for rejected rows) and the outcome, for the frames ``_judged_frames`` returns."""
    rejected = judged.outcome == REJECTED
    return judged.select(
        *PROCESSED_COLUMNS, "partition_date", "reason", "message", "raw_payload", "outcome", "over_valid",
        **{LANDED + c: rejected.ifelse(judged[LANDED + c], _null()) for c in CHECKIN_COLUMNS})


def processed_rows(judged: ir.Table) -> ir.Table:
    """okr_processed's columns of the accepted rows of ``versions``."""
    accepted = judged.filter(judged.outcome == ACCEPTED)
    return accepted.mutate(confidence=accepted.confidence.cast("int64")).select(*PROCESSED_COLUMNS)


def reject_rows(judged: ir.Table) -> ir.Table:
    """okr_rejects' columns of the rejected rows of ``versions``: the contract columns as landed."""
    rejected = judged.filter(judged.outcome == REJECTED)
    return rejected.select(*LINEAGE_COLUMNS, "reason", "message",
                           *(rejected[LANDED + c].name(c) for c in CHECKIN_COLUMNS), "raw_payload")


# ---------------------------------------------------------------------------------------------
# The same on DataFrames
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationResult:
    accepted: pd.DataFrame
    rejects: pd.DataFrame


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


_OPTIONAL_LANDED = ("landing_error", "landing_error_message", "raw_payload")


def _as_raw(frame: pd.DataFrame, mine: bool) -> pd.DataFrame:
    """A DataFrame of landed rows in okr_raw's shape (contract and landing columns as text)."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for column in (*CHECKIN_COLUMNS, *_OPTIONAL_LANDED, "source", "source_ref"):
        values = frame[column] if column in frame else pd.Series(pd.NA, index=frame.index)
        out[column] = values.astype("string[pyarrow]")  # text even when all null, as in okr_raw
    out["raw_id"] = frame["raw_id"].astype("int64")
    out["ingested_at"] = pd.to_datetime(frame["ingested_at"], utc=True)
    out["partition_date"] = pd.to_datetime(frame["partition_date"]) if "partition_date" in frame else pd.NaT
    out["_mine_row"] = mine
    return out.reset_index(drop=True)


def partition_dates(landed: pd.DataFrame, first_partition: dt.date) -> pd.Series:
    """``routed``'s ``partition_date`` (midnight datetime64) of landed text rows (``checkin_at``
    and ``ingested_at``), in row order: what landing decides for them in the warehouse."""
    import pandas as pd

    from okr_assets.lib.engine import on_frames

    frame = pd.DataFrame({"checkin_at": landed["checkin_at"].astype("string[pyarrow]").array,  # text, even all null
                          "ingested_at": pd.to_datetime(landed["ingested_at"], utc=True).to_numpy(),
                          "_row": range(len(landed))})
    out = on_frames(lambda landed: routed(landed, first_partition).select("_row", "partition_date"), ["_row"],
                    cache_key=("routed", first_partition), landed=frame)
    return pd.Series(pd.to_datetime(out["partition_date"]).to_numpy(), index=landed.index, name="partition_date")


def validate_versions(raw: pd.DataFrame, first_partition: dt.date,
                      other_versions: pd.DataFrame | None = None) -> VersionedResult:
    """``versions`` over the landed rows ``raw``, with ``other_versions`` (the same check-ins'
    versions landed elsewhere, e.g. in other partitions) deciding the winners only. ``raw_id``
    must be unique across both frames, as it is in okr_raw."""
    import pandas as pd

    frames = [_as_raw(raw, True)]
    if other_versions is not None and len(other_versions):
        frames.append(_as_raw(other_versions, False))
    landed = pd.concat(frames, ignore_index=True)
    accepted, rejects, fates = _judged_frames(
        lambda landed: versions(landed, lambda t: t._mine_row, first_partition), landed,
        ("versions", first_partition))
    superseded_ids = fates[fates["outcome"].isin(SUPERSESSION_KINDS)].set_index("raw_id")["outcome"]
    mine = raw.reset_index(drop=True)
    superseded = mine[mine["raw_id"].astype("int64").isin(superseded_ids.index)].reset_index(drop=True)
    superseded["supersession"] = superseded["raw_id"].astype("int64").map(superseded_ids).to_numpy()
    return VersionedResult(accepted=accepted, rejects=rejects, superseded=superseded,
                           rejected_over_valid=int(fates["over_valid"].sum()))


def validate_checkins(raw: pd.DataFrame, first_partition: dt.date) -> ValidationResult:
    """Every landed row judged on its own (no deduplication): the accepted rows in okr_processed's
    columns and the rejects in okr_rejects'. The reference time for "in the future" is each row's
    own ``ingested_at``, which keeps the result deterministic when a partition is re-processed."""

    def judge(landed: ir.Table) -> ir.Table:
        judged = verdicts(landed, first_partition)
        return judged.mutate(outcome=judged.reason.isnull().ifelse(ACCEPTED, REJECTED), over_valid=False)

    accepted, rejects, _ = _judged_frames(judge, _as_raw(raw, True), ("checkins", first_partition))
    return ValidationResult(accepted=accepted, rejects=rejects)


def _judged_frames(judge: Callable[[ir.Table], ir.Table], landed: pd.DataFrame, cache_key: Hashable
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(accepted, rejects, outcome per raw_id) of ``judge`` over a DataFrame of landed rows, from
    one query: the rows' processed and rejected shapes side by side."""
    from okr_assets.lib.engine import on_frames

    def both(landed: ir.Table) -> ir.Table:
        import ibis

        rows = kept(judge(landed))
        # Cast only an accepted row's confidence (0-10): a rejected one may be any double.
        accepted = (rows.outcome == ACCEPTED).ifelse(rows.confidence, ibis.null("float64"))
        return rows.mutate(confidence=accepted.cast("int64"))

    rows = on_frames(both, ["raw_id"], dates=("partition_date",), cache_key=cache_key, landed=landed)
    accepted = rows[rows["outcome"] == ACCEPTED][list(PROCESSED_COLUMNS)].reset_index(drop=True)
    accepted["confidence"] = accepted["confidence"].astype("Int64")
    rejected = rows[rows["outcome"] == REJECTED].drop(columns=list(CHECKIN_COLUMNS))
    rejects = rejected.rename(columns={LANDED + c: c for c in CHECKIN_COLUMNS})[list(REJECT_COLUMNS)]
    return _model_dtypes(accepted), _model_dtypes(rejects.reset_index(drop=True)), rows[
        ["raw_id", "outcome", "over_valid"]]


def _model_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Text as the default ``string`` dtype, as the Pandera models declare."""
    import pandas as pd

    for column in frame.columns:
        if frame[column].dtype == object or isinstance(frame[column].dtype, pd.StringDtype):
            frame[column] = frame[column].astype(pd.StringDtype("python"))
    return frame
