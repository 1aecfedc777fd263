"""The Kafka message contract: JSON check-ins, parsed into the same text row as a CSV line.

A message is the CSV contract's fields plus an envelope: ``schema_version`` ("1.0"),
``event_id`` (UUID) and ``produced_at`` (RFC 3339). Parsing never raises: a message that cannot
become a row is returned as a row carrying ``landing_error`` (reason code and sentence) and the
truncated payload, so it is rejected downstream like any bad CSV row and never blocks the
messages after it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from okr_assets.lib.contract import CHECKIN_COLUMNS, RejectReason
from okr_assets.lib.csv_reader import payload_preview

SCHEMA_VERSIONS: frozenset[str] = frozenset({"1.0"})
ENVELOPE_FIELDS: tuple[str, ...] = ("schema_version", "event_id", "produced_at")
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024


def _text(value: Any) -> str | None:
    """JSON value -> the text a CSV cell would hold (numbers keep their JSON spelling)."""
    if value is None:
        return None
    if isinstance(value, bool):  # a boolean metric may be sent as true/false
        return "1" if value else "0"
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)  # objects/arrays: kept, and will not parse


def _storable(text: str) -> bool:
    """Text a UTF-8 database column can hold: no NUL, no lone surrogate (JSON can encode both)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_text(value: Any) -> str:
    """JSON for okr_raw.extra: readable Unicode, escaped only when it would not be storable."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if _storable(text) else json.dumps(value, ensure_ascii=True, sort_keys=True)


def _error(code: RejectReason, message: str, payload: bytes | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CHECKIN_COLUMNS)
    row.update(
        extra=None,
        landing_error=code.value,
        landing_error_message=message,
        raw_payload=payload_preview(payload or b""),
    )
    return row


def parse_message(payload: bytes | None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """One okr_raw text row (contract columns, ``extra``, ``landing_error*``, ``raw_payload``)."""
    if payload is None:
        return _error(RejectReason.MESSAGE_NOT_JSON, "empty message (null value, e.g. a tombstone)", None)
    if len(payload) > max_bytes:
        return _error(RejectReason.MESSAGE_TOO_LARGE,
                      f"message of {len(payload):,} bytes exceeds the {max_bytes:,}-byte limit", payload)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(RejectReason.MESSAGE_NOT_UTF8,
                      f"not UTF-8: undecodable byte 0x{payload[exc.start]:02x} at offset {exc.start}", payload)
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        return _error(RejectReason.MESSAGE_NOT_JSON, f"not JSON: {exc.msg} at position {exc.pos}", payload)
    if not isinstance(body, dict):
        return _error(RejectReason.MESSAGE_NOT_OBJECT,
                      f"JSON {type(body).__name__} instead of an object", payload)
    version = body.get("schema_version")
    if _text(version) not in SCHEMA_VERSIONS:
        return _error(RejectReason.UNKNOWN_SCHEMA_VERSION,
                      f"schema_version {version!r} is not one of {sorted(SCHEMA_VERSIONS)}", payload)
    try:
        uuid.UUID(str(body.get("event_id")))
    except ValueError:
        return _error(RejectReason.INVALID_ENVELOPE,
                      f"event_id {body.get('event_id')!r} is not a UUID", payload)
    try:
        dt.datetime.fromisoformat(str(body.get("produced_at")))
    except ValueError:
        return _error(RejectReason.INVALID_ENVELOPE,
                      f"produced_at {body.get('produced_at')!r} is not an RFC 3339 timestamp", payload)

    row: dict[str, Any] = {c: _text(body.get(c)) for c in CHECKIN_COLUMNS}
    unstorable = [c for c, v in row.items() if v is not None and not _storable(v)]
    if unstorable:  # valid JSON ("\u0000", "\ud800"), but no warehouse text column can hold it
        return _error(RejectReason.UNSTORABLE_CHARACTER,
                      f"field(s) {', '.join(unstorable)} contain U+0000 or a lone surrogate", payload)
    extras = {k: v for k, v in body.items() if k not in CHECKIN_COLUMNS}
    row.update(
        extra=_json_text(extras),
        landing_error=None,
        landing_error_message=None,
        raw_payload=None,
    )
    return row


def checkin_to_message(row: dict[str, Any], event_id: str, produced_at: str) -> bytes:
    """Encode a contract row (text or typed values) as a schema 1.0 message."""
    body = {"schema_version": "1.0", "event_id": event_id, "produced_at": produced_at}
    body.update({c: row.get(c) for c in CHECKIN_COLUMNS})
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
