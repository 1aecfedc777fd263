"""The contract's rules, defined once: reason code, predicate and sentence.

``RULES`` is the ordered table every landed row is judged by. A rejected row carries the reason of
the *first* rule it breaks and that rule's sentence, so counts by reason add up to the rejected
rows. The same table drives three things:

- the routing expression (``okr_assets.lib.validation.verdicts``), which the warehouse engine runs;
- the blocking check of okr_processed: every rule whose predicate reads only typed columns must hold
  on every published row (``PROCESSED_RULES``; ``okr_assets.defs.tables.checks``);
- the README's table of reject reasons (``python -m okr_assets.lib.rules --write`` rewrites it; a
  test fails while it is out of date).

Predicates and sentences are Ibis expressions over a row's parsed columns: the typed values under
their okr_processed names (``start_value``, ``checkin_date``, ...), the stripped landed text as
``text_<column>`` and the lineage columns. Ibis is imported when a rule is evaluated, not here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from okr_assets.lib.contract import (
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
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

TEXT = "text_"  # prefix of the stripped landed text of a contract column


@dataclass(frozen=True)
class Rule:
    """``broken(row, first_partition)`` is true where a row breaks the rule (null counts as not
    broken: a rule about a missing value is a rule of its own); ``sentence(row, first_partition)``
    says why, for those rows. ``typed_only``: the predicate reads only okr_processed columns, so it
    is also checked on the rows about to be published."""

    reason: RejectReason
    summary: str  # the README's words
    broken: Callable[[Any, dt.date], ir.BooleanValue]
    sentence: Callable[[Any, dt.date], ir.StringValue]
    typed_only: bool = False


def shown(value: ir.Value) -> ir.StringValue:
    """A value as a sentence shows it; an empty field is ``<empty>``."""
    return value.cast("string").coalesce("<empty>")


def decimal_text(value: ir.FloatingValue) -> ir.StringValue:
    """A float as Python prints it (``7.0``, ``12.35``, ``1e+20``), on every engine: DuckDB's text
    of a double already is; PostgreSQL drops the ``.0`` of a whole number, which is added back."""
    # Ibis floors to a 64-bit integer: clipped first, so a value beyond its range (a progress of
    # -2e125 is a valid double) is never cast; it is printed as a double.
    near = value.clip(lower=-1e15, upper=1e15)
    whole = (value.abs() < 1e15) & (near == near.floor())
    return whole.ifelse(near.cast("int64").cast("string") + ".0", value.cast("string"))


def iso_utc(ts: ir.TimestampValue) -> ir.StringValue:
    """``YYYY-MM-DDTHH:MM:SSZ`` of a UTC timestamp, built from its fields: Ibis's strftime becomes
    PostgreSQL's to_char, whose pattern language reads the ``T`` of ``DDTHH`` as an ordinal suffix.
    The seconds are cast to an integer: Spark's ``EXTRACT(second ...)`` keeps the fraction
    (``0.000000``), where DuckDB and PostgreSQL give whole seconds."""
    def two(v: ir.IntegerValue) -> ir.StringValue:
        return v.cast("string").lpad(2, "0")

    return (ts.year().cast("string").lpad(4, "0") + "-" + two(ts.month()) + "-" + two(ts.day()) + "T"
            + two(ts.hour()) + ":" + two(ts.minute()) + ":" + two(ts.second().cast("int64")) + "Z")


def _missing(column: str) -> Rule:
    return Rule(RejectReason.MISSING_REQUIRED, "A required field is empty.",
                lambda r, _: r[TEXT + column].isnull(),
                lambda r, _: _literal(f"required field '{column}' is missing"))


def _number(column: str) -> Rule:
    return Rule(RejectReason.UNPARSEABLE_NUMBER, "A number does not parse or is NaN/Inf.",
                lambda r, _: r[TEXT + column].notnull() & r[column].isnull(),
                lambda r, _: f"{column} '" + shown(r[TEXT + column]) + "' is not a finite number")


def _date(column: str, expected: str) -> Rule:
    return Rule(RejectReason.UNPARSEABLE_DATE, "A date or timestamp does not parse.",
                lambda r, _: r[TEXT + column].notnull() & r[column].isnull(),
                lambda r, _: f"{column} '" + shown(r[TEXT + column]) + f"' is not {expected}")


def _enum(column: str, allowed: tuple[str, ...]) -> Rule:
    return Rule(RejectReason.UNKNOWN_ENUM, "An enum value is unknown after synonym mapping.",
                lambda r, _: r[TEXT + column].notnull() & r[column].isnull(),
                lambda r, _: f"{column} '" + shown(r[TEXT + column]) + f"' is not one of {', '.join(allowed)}")


def _literal(text: str) -> ir.StringValue:
    import ibis

    return ibis.literal(text)


def _checkin_day_outside_cycle(r: Any, _: dt.date) -> ir.BooleanValue:
    import ibis

    grace = ibis.interval(days=CYCLE_GRACE_DAYS)
    return (r.checkin_date < r.cycle_start - grace) | (r.checkin_date > r.cycle_end + grace)


def _in_future(r: Any, _: dt.date) -> ir.BooleanValue:
    import ibis

    return r.checkin_at > r.ingested_at + ibis.interval(seconds=FUTURE_TOLERANCE_SECONDS)


def _before_first(r: Any, first_partition: dt.date) -> ir.BooleanValue:
    import ibis

    return r.checkin_date < ibis.date(first_partition)


RULES: tuple[Rule, ...] = (
    *(_missing(c) for c in REQUIRED_COLUMNS),
    *(_number(c) for c in (*NUMERIC_COLUMNS, "confidence")),
    *(_date(c, "a YYYY-MM-DD date") for c in DATE_COLUMNS),
    _date("checkin_at", "an RFC 3339 timestamp with offset"),
    *(_enum(c, allowed) for c, allowed in ENUMS.items()),
    Rule(RejectReason.INVALID_CYCLE, "The cycle ends before it starts.",
         lambda r, _: r.cycle_end < r.cycle_start,
         lambda r, _: "cycle_end " + shown(r[TEXT + "cycle_end"]) + " is before cycle_start "
         + shown(r[TEXT + "cycle_start"]), typed_only=True),
    Rule(RejectReason.START_EQUALS_TARGET, "start_value equals target_value, so progress is undefined.",
         lambda r, _: r.start_value == r.target_value,
         lambda r, _: "start_value equals target_value (" + shown(r[TEXT + "start_value"]) + ")", typed_only=True),
    Rule(RejectReason.DIRECTION_CONTRADICTION, "The direction contradicts start and target values.",
         lambda r, _: ((r.direction == "increase") & (r.target_value < r.start_value))
         | ((r.direction == "decrease") & (r.target_value > r.start_value)),
         lambda r, _: "direction '" + shown(r.direction) + "' contradicts start_value "
         + shown(r[TEXT + "start_value"]) + " and target_value " + shown(r[TEXT + "target_value"]), typed_only=True),
    Rule(RejectReason.CONFIDENCE_OUT_OF_RANGE, "confidence is not an integer between 0 and 10.",
         lambda r, _: r.confidence.notnull() & ((r.confidence < CONFIDENCE_MIN) | (r.confidence > CONFIDENCE_MAX)
                                                | (r.confidence != r.confidence.floor())),
         lambda r, _: "confidence " + shown(r[TEXT + "confidence"]) + " is not an integer between 0 and 10",
         typed_only=True),
    Rule(RejectReason.WEIGHT_OUT_OF_RANGE, "weight is outside (0, 1].",
         lambda r, _: (r.weight <= 0) | (r.weight > 1),
         lambda r, _: "weight " + shown(r[TEXT + "weight"]) + " is outside (0, 1]", typed_only=True),
    Rule(RejectReason.CHECKIN_IN_FUTURE, "checkin_at is more than 5 minutes after it was ingested.",
         _in_future,
         lambda r, _: "checkin_at " + shown(r[TEXT + "checkin_at"]) + " is more than 5 minutes after ingestion at "
         + iso_utc(r.ingested_at), typed_only=True),
    Rule(RejectReason.BEFORE_FIRST_PARTITION, "checkin_at is before the first daily partition.",
         _before_first,
         lambda r, first: "checkin_at " + shown(r[TEXT + "checkin_at"]) + f" is before the first partition {first}",
         typed_only=True),
    Rule(RejectReason.OUTSIDE_CYCLE, "checkin_at is more than 14 days outside its cycle.",
         _checkin_day_outside_cycle,
         lambda r, _: "checkin_at " + shown(r[TEXT + "checkin_at"]) + " is more than 14 days outside cycle "
         + shown(r[TEXT + "cycle_start"]) + ".." + shown(r[TEXT + "cycle_end"]), typed_only=True),
    Rule(RejectReason.PROGRESS_OUT_OF_RANGE, "|progress| > 5, most likely a unit error.",
         lambda r, _: r.progress.abs() > MAX_ABS_PROGRESS,
         lambda r, _: "progress " + decimal_text(r.progress.round(2)).coalesce("?") + " is beyond +/-5 (value "
         + shown(r[TEXT + "value"]) + "), likely a unit error", typed_only=True),
)

PROCESSED_RULES: tuple[Rule, ...] = tuple(rule for rule in RULES if rule.typed_only)

# Reasons given before the rules run: when a file, a message or a CSV row cannot be read into
# fields at all (okr_assets.lib.csv_reader, okr_assets.lib.messages, okr_assets.lib.landing), the
# landed row carries the reason in ``landing_error`` and its sentence in ``landing_error_message``.
LANDING_REASONS: dict[RejectReason, str] = {
    RejectReason.UNREADABLE_FILE: "The whole file could not be read (encoding, header or format).",
    RejectReason.LOST_BEFORE_LANDING: "Kafka offsets the broker no longer held when they were read (deleted by "
                                      "retention, or lost by the broker): one row per lost range.",
    RejectReason.MESSAGE_TOO_LARGE: "The Kafka message is larger than the configured limit.",
    RejectReason.MESSAGE_NOT_UTF8: "The Kafka message is not UTF-8.",
    RejectReason.MESSAGE_NOT_JSON: "The Kafka message is not JSON.",
    RejectReason.MESSAGE_NOT_OBJECT: "The Kafka message is JSON but not an object.",
    RejectReason.UNKNOWN_SCHEMA_VERSION: "The message's schema_version is missing or unknown.",
    RejectReason.INVALID_ENVELOPE: "event_id is not a UUID or produced_at is not a timestamp.",
    RejectReason.UNSTORABLE_CHARACTER: "A message field contains U+0000 or a lone surrogate (a JSON escape "
                                       "such as \\ud800), which no text column can store.",
    RejectReason.MALFORMED_ROW: "The CSV row has a different number of fields than the header.",
}


def reason_table() -> str:
    """The README's table of reject reasons, in the order they are given."""
    rows = [(reason, text, "landing") for reason, text in LANDING_REASONS.items()]
    seen = set(LANDING_REASONS)
    for rule in RULES:
        if rule.reason not in seen:
            seen.add(rule.reason)
            where = "routing; also checked on okr_processed" if rule.typed_only else "routing"
            rows.append((rule.reason, rule.summary, where))
    lines = ["| Reason | When | Given by |", "| --- | --- | --- |"]
    pipe = "\\|"  # a literal | inside a Markdown table cell
    lines += [f"| `{reason.value}` | {text.replace('|', pipe)} | {where} |" for reason, text, where in rows]
    return "\n".join(lines)


_README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"(<!-- reject-reasons:start -->\n).*?(<!-- reject-reasons:end -->)", re.S)


def readme_with_reason_table(readme: str) -> str:
    if not _BLOCK.search(readme):
        raise ValueError("README.md has no <!-- reject-reasons:start --> ... end --> block")
    return _BLOCK.sub(lambda m: m.group(1) + reason_table() + "\n" + m.group(2), readme)


if __name__ == "__main__":  # python -m okr_assets.lib.rules --write
    import sys

    text = _README.read_text(encoding="utf-8")
    updated = readme_with_reason_table(text)
    if "--write" in sys.argv:
        _README.write_text(updated, encoding="utf-8")
    elif updated != text:
        sys.exit("README.md's reject reason table is out of date: python -m okr_assets.lib.rules --write")
