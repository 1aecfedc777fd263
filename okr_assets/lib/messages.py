"""The Kafka message contract: JSON check-ins, parsed into the same text row as a CSV line.

A message is the CSV contract's fields plus an envelope: ``schema_version`` ("1.0"),
``event_id`` (UUID) and ``produced_at`` (RFC 3339). Parsing never raises: a message that cannot
become a row is returned as a row carrying ``landing_error`` (reason code and sentence) and the
truncated payload, so it is rejected downstream like any bad CSV row and never blocks the
messages after it.

``parse_messages`` is the reference parse of a whole offset range: the envelope is checked
message by message (``json.loads`` and three small checks), everything after that column by
column (text conversion, storability, the ``extra`` JSON). Landing parses with
``messages_duckdb.parse_batch``, which gives the same rows and passes here only the payloads it
cannot prove it reads as ``json`` does.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from okr_assets.lib.contract import CHECKIN_COLUMNS, RejectReason
from okr_assets.lib.csv_reader import payload_preview

SCHEMA_VERSIONS: frozenset[str] = frozenset({"1.0"})
ENVELOPE_FIELDS: tuple[str, ...] = ("schema_version", "event_id", "produced_at")
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
# The columns of a parsed message row, in order.
MESSAGE_COLUMNS: tuple[str, ...] = (*CHECKIN_COLUMNS, "extra", "landing_error", "landing_error_message",
                                    "raw_payload")

_CONTRACT = frozenset(CHECKIN_COLUMNS)
_ENVELOPE = frozenset(ENVELOPE_FIELDS)
_USUAL_KEYS = _CONTRACT | _ENVELOPE
_STRINGS = frozenset({str, type(None)})
_FLOATS = frozenset({float})
_INTS = frozenset({int})
# The canonical UUID form (other forms uuid.UUID accepts are checked by it, one by one).
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID = re.compile(UUID_PATTERN)
_quote = json.encoder.encode_basestring  # a JSON string literal, as json.dumps(ensure_ascii=False) writes it
_FLOAT_WORDS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # what json.dumps writes
# One encoder each instead of json.dumps(..., options) per value, which builds a new encoder per call.
_VALUE_JSON = json.JSONEncoder(ensure_ascii=False)
_EXTRA_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
_EXTRA_JSON_ASCII = json.JSONEncoder(ensure_ascii=True, sort_keys=True)


def _text(value: Any) -> str | None:
    """JSON value -> the text a CSV cell would hold (numbers keep their JSON spelling)."""
    if value is None:
        return None
    if isinstance(value, bool):  # a boolean metric may be sent as true/false
        return "1" if value else "0"
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, float):  # == json.dumps(value)
        text = float.__repr__(value)
        return _FLOAT_WORDS.get(text, text)
    if isinstance(value, int):
        return int.__repr__(value)
    return _VALUE_JSON.encode(value)  # objects/arrays: kept, and will not parse


def _storable(text: str) -> bool:
    """Text a UTF-8 database column can hold: no NUL, no lone surrogate (JSON can encode both)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable(texts: list[str | None]) -> list[int]:
    """Positions of the texts that are not storable. One check over the whole column first:
    a lone surrogate or a NUL stays one when the texts are concatenated."""
    joined = "".join(filter(None, texts))
    if (joined.isascii() and "\x00" not in joined) or _storable(joined):
        return []
    return [i for i, v in enumerate(texts) if v is not None and not _storable(v)]


def _json_text(value: Any) -> str:
    """JSON for okr_raw.extra: readable Unicode, escaped only when it would not be storable."""
    text = _EXTRA_JSON.encode(value)
    return text if _storable(text) else _EXTRA_JSON_ASCII.encode(value)


def _body(payload: bytes | None, max_bytes: int) -> dict[str, Any] | tuple[RejectReason, str]:
    """The message's JSON object when its envelope is valid, else (reason, message)."""
    if payload is None:
        return RejectReason.MESSAGE_NOT_JSON, "empty message (null value, e.g. a tombstone)"
    if len(payload) > max_bytes:
        return (RejectReason.MESSAGE_TOO_LARGE,
                f"message of {len(payload):,} bytes exceeds the {max_bytes:,}-byte limit")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (RejectReason.MESSAGE_NOT_UTF8,
                f"not UTF-8: undecodable byte 0x{payload[exc.start]:02x} at offset {exc.start}")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        return RejectReason.MESSAGE_NOT_JSON, f"not JSON: {exc.msg} at position {exc.pos}"
    except (ValueError, RecursionError) as exc:  # a number of > 4300 digits; nesting deeper than Python's stack
        return RejectReason.MESSAGE_NOT_JSON, f"not JSON we can read: {str(exc).split(';')[0]}"
    if not isinstance(body, dict):
        return RejectReason.MESSAGE_NOT_OBJECT, f"JSON {type(body).__name__} instead of an object"
    try:
        problem = _envelope_problem(body)
    except RecursionError:  # a value nested too deeply to be converted to text
        return RejectReason.MESSAGE_NOT_JSON, "not JSON we can store: nested too deeply"
    if problem:
        return problem
    return body


def _envelope_problem(body: dict[str, Any]) -> tuple[RejectReason, str] | None:
    version = body.get("schema_version")
    if _text(version) not in SCHEMA_VERSIONS:
        return (RejectReason.UNKNOWN_SCHEMA_VERSION,
                f"schema_version {version!r} is not one of {sorted(SCHEMA_VERSIONS)}")
    event_id = body.get("event_id")
    if not (type(event_id) is str and _UUID.fullmatch(event_id)):  # the canonical form is a UUID
        try:
            uuid.UUID(str(event_id))
        except ValueError:
            return RejectReason.INVALID_ENVELOPE, f"event_id {event_id!r} is not a UUID"
    try:
        dt.datetime.fromisoformat(str(body.get("produced_at")))
    except ValueError:
        return (RejectReason.INVALID_ENVELOPE,
                f"produced_at {body.get('produced_at')!r} is not an RFC 3339 timestamp")
    return None


def _texts(values: tuple[Any, ...]) -> list[str | None] | tuple[Any, ...]:
    """One contract column of JSON values as text (``_text`` of each), in one pass where the
    column has one type: all strings (the usual case), all floats or all integers."""
    kinds = set(map(type, values))
    if kinds <= _STRINGS:
        return [v or None for v in values] if "" in values else values
    if kinds == _FLOATS and all(map(math.isfinite, values)):
        return list(map(float.__repr__, values))
    if kinds == _INTS:
        return list(map(int.__repr__, values))
    return [_text(v) for v in values]


def _extra_text(body: dict[str, Any]) -> str:
    """``_json_text`` of the fields beyond the contract; written directly for the usual case
    (exactly the envelope's three text fields), with the output json.dumps would give."""
    if body.keys() == _USUAL_KEYS:
        event_id, produced_at, version = body["event_id"], body["produced_at"], body["schema_version"]
        if type(event_id) is str and type(produced_at) is str and type(version) is str:
            return (f'{{"event_id": {_quote(event_id)}, "produced_at": {_quote(produced_at)}, '
                    f'"schema_version": {_quote(version)}}}')
    return _EXTRA_JSON.encode({k: v for k, v in body.items() if k not in _CONTRACT})


def parse_messages(payloads: Sequence[bytes | None],
                   max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> pd.DataFrame:
    """One okr_raw text row per message, in order (``MESSAGE_COLUMNS``, object columns)."""
    n = len(payloads)
    errors: dict[int, tuple[RejectReason, str]] = {}
    bodies: list[dict[str, Any]] = []
    positions: list[int] = []
    escapes = False  # NUL and lone surrogates can only come from \u escapes (raw ones are not JSON/UTF-8)
    for i, payload in enumerate(payloads):
        body = _body(payload, max_bytes)
        if isinstance(body, dict):
            bodies.append(body)
            positions.append(i)
            escapes = escapes or b"\\u" in payload
        else:
            errors[i] = body

    # Columns of the valid messages: one C-level pass per message, then a transpose.
    rows = [tuple(map(body.get, CHECKIN_COLUMNS)) for body in bodies]
    by_column = list(zip(*rows, strict=True)) or [()] * len(CHECKIN_COLUMNS)
    texts: dict[str, Any] = {}
    unstorable: dict[int, list[str]] = {}  # position in bodies -> fields
    too_deep: set[int] = set()
    for column, values in zip(CHECKIN_COLUMNS, by_column, strict=True):
        try:
            texts[column] = _texts(values)
        except RecursionError:  # an array nested so deep that it cannot be written back as JSON
            texts[column] = [None] * len(values)
            for j, v in enumerate(values):
                try:
                    texts[column][j] = _text(v)
                except RecursionError:
                    too_deep.add(j)
        for j in _unstorable(texts[column]) if escapes else ():  # valid JSON ("\u0000", "\ud800"),
            unstorable.setdefault(j, []).append(column)               # but no text column can hold it
    extras: list[str | None] = []
    for j, body in enumerate(bodies):
        try:
            extras.append(_extra_text(body))
        except RecursionError:
            extras.append(None)
            too_deep.add(j)
    for j in _unstorable(extras) if escapes else ():
        extras[j] = _EXTRA_JSON_ASCII.encode({k: v for k, v in bodies[j].items() if k not in _CONTRACT})
    for j in sorted(set(unstorable) | too_deep):
        errors[positions[j]] = (
            (RejectReason.UNSTORABLE_CHARACTER,
             f"field(s) {', '.join(unstorable[j])} contain U+0000 or a lone surrogate") if j in unstorable
            else (RejectReason.MESSAGE_NOT_JSON, "not JSON we can store: nested too deeply"))

    columns: dict[str, np.ndarray] = {}
    if not errors:  # the usual case: every message is a row
        for column, values in [*texts.items(), ("extra", extras)]:
            columns[column] = _objects(values)
    else:
        good = np.asarray(positions, dtype=np.int64)
        kept = np.ones(len(bodies), dtype=bool)
        kept[[j for j, p in enumerate(positions) if p in errors]] = False
        for column, values in [*texts.items(), ("extra", extras)]:
            full = np.full(n, None, dtype=object)
            if len(bodies):
                full[good[kept]] = _objects(values)[kept]
            columns[column] = full
    for column in ("landing_error", "landing_error_message", "raw_payload"):
        columns[column] = np.full(n, None, dtype=object)
    for i, (code, message) in errors.items():
        columns["landing_error"][i] = code.value
        columns["landing_error_message"][i] = message
        columns["raw_payload"][i] = payload_preview(payloads[i] or b"")
    return pd.DataFrame(columns, columns=list(MESSAGE_COLUMNS))


def _objects(values: Sequence[Any]) -> np.ndarray:
    """An object array holding exactly these values (np.asarray would unpack nested sequences)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def parse_message(payload: bytes | None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """One okr_raw text row (contract columns, ``extra``, ``landing_error*``, ``raw_payload``)."""
    return parse_messages([payload], max_bytes).iloc[0].to_dict()


def checkin_to_message(row: dict[str, Any], event_id: str, produced_at: str) -> bytes:
    """Encode a contract row (text or typed values) as a schema 1.0 message."""
    body = {"schema_version": "1.0", "event_id": event_id, "produced_at": produced_at}
    body.update({c: row.get(c) for c in CHECKIN_COLUMNS})
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
