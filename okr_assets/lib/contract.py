"""The OKR check-in contract: one record, the same for CSV files and Kafka messages.

Everything that describes *what a valid check-in is* lives here (columns, enums, synonyms,
reject reasons, limits) so the CSV reader, the validator, the generator and the Pandera
models all read the same facts.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

# ---------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------

CHECKIN_COLUMNS: Final[tuple[str, ...]] = (
    "org_id",
    "team_id",
    "cycle_id",
    "cycle_start",
    "cycle_end",
    "objective_id",
    "objective_title",
    "okr_kind",
    "key_result_id",
    "kr_title",
    "owner_id",
    "metric_kind",
    "direction",
    "unit",
    "start_value",
    "target_value",
    "weight",
    "checkin_id",
    "checkin_at",
    "value",
    "confidence",
    "status",
    "comment",
)

OPTIONAL_COLUMNS: Final[frozenset[str]] = frozenset(
    {"objective_title", "kr_title", "unit", "confidence", "comment"}
)
REQUIRED_COLUMNS: Final[tuple[str, ...]] = tuple(
    c for c in CHECKIN_COLUMNS if c not in OPTIONAL_COLUMNS
)
NUMERIC_COLUMNS: Final[tuple[str, ...]] = ("start_value", "target_value", "weight", "value")
DATE_COLUMNS: Final[tuple[str, ...]] = ("cycle_start", "cycle_end")
TIMESTAMP_COLUMNS: Final[tuple[str, ...]] = ("checkin_at",)

# ---------------------------------------------------------------------------------------------
# Enumerations and the synonyms OKR tools actually export
# ---------------------------------------------------------------------------------------------

OKR_KINDS: Final[tuple[str, ...]] = ("committed", "aspirational")
METRIC_KINDS: Final[tuple[str, ...]] = ("numeric", "percent", "currency", "boolean", "milestone")
DIRECTIONS: Final[tuple[str, ...]] = ("increase", "decrease")
STATUSES: Final[tuple[str, ...]] = ("not_started", "on_track", "at_risk", "off_track", "achieved")

ENUMS: Final[dict[str, tuple[str, ...]]] = {
    "okr_kind": OKR_KINDS,
    "metric_kind": METRIC_KINDS,
    "direction": DIRECTIONS,
    "status": STATUSES,
}

# Synonyms are matched after normalising case, spaces, hyphens and underscores, so
# "On Track", "ON_TRACK" and "on-track" all become "on_track" without listing each spelling.
_EXTRA_SYNONYMS: Final[dict[str, dict[str, str]]] = {
    "status": {
        "notstarted": "not_started",
        "todo": "not_started",
        "ontrack": "on_track",
        "good": "on_track",
        "atrisk": "at_risk",
        "risk": "at_risk",
        "offtrack": "off_track",
        "behind": "off_track",
        "done": "achieved",
        "complete": "achieved",
        "completed": "achieved",
    },
    "okr_kind": {"commit": "committed", "stretch": "aspirational", "moonshot": "aspirational"},
    "metric_kind": {"number": "numeric", "percentage": "percent", "money": "currency",
                    "binary": "boolean", "bool": "boolean"},
    "direction": {"up": "increase", "increasing": "increase", "down": "decrease",
                  "decreasing": "decrease"},
}

_SEPARATORS = re.compile(r"[\s_\-]+")


def _squash(text: str) -> str:
    return _SEPARATORS.sub("", text.strip().lower())


def enum_lookup(column: str) -> dict[str, str]:
    """Map of squashed spelling -> canonical value for one enum column."""
    lookup = {_squash(v): v for v in ENUMS[column]}
    lookup.update(_EXTRA_SYNONYMS.get(column, {}))
    return lookup


def canonical_enum(column: str, raw: str | None) -> str | None:
    """The canonical enum value for ``raw``, or None when it is unknown."""
    if raw is None:
        return None
    return enum_lookup(column).get(_squash(raw))


# RFC 3339 with an explicit offset, seconds optional (``2025-07-08T14:03:11Z``, ``2025-07-08 16:03+02:00``):
# the one grammar of checkin_at, for partition routing at landing and typing in the engine.
RFC3339_PATTERN: Final[str] = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?"
                               r"([Zz]|[+-][0-9]{2}:[0-9]{2})$")

# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------

CONFIDENCE_MIN: Final[int] = 0
CONFIDENCE_MAX: Final[int] = 10
FUTURE_TOLERANCE_SECONDS: Final[int] = 5 * 60
CYCLE_GRACE_DAYS: Final[int] = 14
MAX_ABS_PROGRESS: Final[float] = 5.0
DEFAULT_TARGET_SCORE: Final[float] = 0.7

# ---------------------------------------------------------------------------------------------
# Reject reasons: a machine-readable code per rule, in the order rules are applied
# ---------------------------------------------------------------------------------------------


class RejectReason(StrEnum):
    UNREADABLE_FILE = "unreadable_file"
    LOST_BEFORE_LANDING = "lost_before_landing"
    MESSAGE_TOO_LARGE = "message_too_large"
    MESSAGE_NOT_UTF8 = "message_not_utf8"
    MESSAGE_NOT_JSON = "message_not_json"
    MESSAGE_NOT_OBJECT = "message_not_object"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    INVALID_ENVELOPE = "invalid_envelope"
    UNSTORABLE_CHARACTER = "unstorable_character"
    MALFORMED_ROW = "malformed_row"
    MISSING_REQUIRED = "missing_required"
    UNPARSEABLE_NUMBER = "unparseable_number"
    UNPARSEABLE_DATE = "unparseable_date"
    UNKNOWN_ENUM = "unknown_enum"
    INVALID_CYCLE = "invalid_cycle"
    START_EQUALS_TARGET = "start_equals_target"
    DIRECTION_CONTRADICTION = "direction_contradiction"
    CONFIDENCE_OUT_OF_RANGE = "confidence_out_of_range"
    WEIGHT_OUT_OF_RANGE = "weight_out_of_range"
    CHECKIN_IN_FUTURE = "checkin_in_future"
    BEFORE_FIRST_PARTITION = "before_first_partition"
    OUTSIDE_CYCLE = "outside_cycle"
    PROGRESS_OUT_OF_RANGE = "progress_out_of_range"


REJECT_REASON_CODES: Final[tuple[str, ...]] = tuple(r.value for r in RejectReason)
