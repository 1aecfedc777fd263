"""The message contract's parse of a whole batch in DuckDB, for every warehouse engine.

``messages.parse_messages`` is the reference: what a payload becomes (contract text, ``extra``,
reject reason and sentence). This module gives the same rows for a batch without a Python object
per message: the payloads go to an in-memory DuckDB as one Arrow column, and one statement reads
each JSON object once and writes its text columns. DuckDB parses without the GIL and on every
core, so the next offset range is read from Kafka while this one is parsed.

DuckDB's reader is more lenient than Python's ``json`` (trailing commas, ``NaN``, ``inf``) and
writes some numbers differently (``1e-05`` as ``0.00001``), so the statement only writes a row it
can prove Python would write identically: an object of the contract's and envelope's keys, each
once, with strings, nulls and numbers, a valid envelope and nothing Python reads differently (no
escaped NUL or surrogate, no comma before a closing bracket, numbers in the range where both spell
them the same). Every other payload (the bad ones, and good ones outside that proof) is
parsed by the reference, so the rows are exactly the reference's; ``okr_assets_tests`` fuzz both
against each other.

Why here and not in the warehouse's own SQL: PostgreSQL 15 cannot test text for JSON inside a
statement (no ``IS JSON`` before 16, a failed cast aborts the statement), and parsing before the
write keeps the landing transaction short; DuckDB is embedded, so every deployment has it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.lib.messages import (
    ENVELOPE_FIELDS,
    MESSAGE_COLUMNS,
    SCHEMA_VERSIONS,
    UUID_PATTERN,
    parse_messages,
)

if TYPE_CHECKING:
    import pyarrow as pa

_FIELDS: tuple[str, ...] = (*CHECKIN_COLUMNS, *ENVELOPE_FIELDS)
# RFC 3339 as datetime.fromisoformat reads it (Python 3.11): the calendar date is checked by a cast.
_TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{3}|\.[0-9]{6})?" \
             r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Every member's value that is not a string: all must be null or numbers Python writes as DuckDB
# does, so true/false, arrays, objects, NaN and Infinity go to the reference (as does a string
# holding `": 1x`, harmlessly). Every member's value follows `"` (its key's end) and `:`.
_VALUES = r'"\s*:\s*([^"\s][^,}\s]*)'
# Numbers DuckDB writes as Python does: integers of up to 18 digits (int64 range: DuckDB writes the
# integer, Python its int), and decimals without exponent where both write the double positionally
# with the same shortest digits (Python's repr does for 1e-4 <= |x| < 1e16: at most 15 digits
# before the point, and not 0.0000 followed by more digits).
_PYTHON_VALUE = r"null|-?(0|[1-9][0-9]{0,17})|-?(0|[1-9][0-9]{0,14})\.[0-9]+"
_SMALL = r"-?0\.0000[0-9]*[1-9][0-9]*"
_VERSION_MEMBER = r'"schema_version"\s*:\s*"(' + "|".join(re.escape(v) for v in sorted(SCHEMA_VERSIONS)) + ')"'


def _statement(max_bytes: int) -> str:
    spec = "{" + ", ".join(f'"{c}": "VARCHAR"' for c in _FIELDS) + "}"
    version, event_id, produced_at = (f"v.{c}" for c in ENVELOPE_FIELDS)
    candidate = " AND ".join([
        f"payload IS NOT NULL AND nbytes <= {int(max_bytes)}",
        "starts_with(payload, '{') AND ends_with(payload, '}')",
        # \u0000 and surrogates (a lone one cannot be stored; DuckDB raises on it) and \u0001
        # (the key separator below) go to the reference; other escapes DuckDB decodes as Python does.
        r"NOT regexp_matches(payload, '\\u(000[01]|[dD][89a-fA-F])')",
        r"NOT regexp_matches(payload, ',\s*[\]}]')",  # a trailing comma: DuckDB reads it, Python does not
        "json_valid(payload)",
    ])
    values = f"array_to_string(regexp_extract_all(payload, {_sql_text(_VALUES)}, 1), ' ')"
    plain = " AND ".join([
        # Each key once and each one the contract's or the envelope's: as many keys as the
        # distinct known keys found among them (a key cannot hold \x01, which needs a \u escape).
        f"len(key_list) = {' + '.join(f'contains(keys, {_sql_text(chr(1) + c + chr(1))})::INT' for c in _FIELDS)}",
        f"regexp_full_match(nonstrings, {_sql_text(f'(({_PYTHON_VALUE})( |$))*')})",
        f"NOT regexp_matches(nonstrings, {_sql_text(f'(^| ){_SMALL}( |$)')})",
        # A string, not a number such as 1.0 (which DuckDB's VARCHAR also writes as 1.0): outside
        # a string no `"` is escaped, so the pattern finds the member itself.
        f"{version} IN ({', '.join(_sql_text(v) for v in sorted(SCHEMA_VERSIONS))})",
        f"regexp_matches(payload, {_sql_text(_VERSION_MEMBER)})",
        f"regexp_full_match({event_id}, {_sql_text(UUID_PATTERN)})",
        f"regexp_full_match({produced_at}, '{_TIMESTAMP}')",
        f"NOT starts_with({produced_at}, '0000') AND TRY_CAST(left({produced_at}, 10) AS DATE) IS NOT NULL",
    ])
    extra = (f"""'{{"event_id": "' || {event_id} || '", "produced_at": "' || {produced_at} """
             f"""|| '", "schema_version": "' || {version} || '"}}'""")
    columns = ", ".join(f"nullif(v.{c}, '') AS {c}" for c in CHECKIN_COLUMNS)
    # CASE guards the extraction: DuckDB raises on some payloads json_valid lets through.
    return f"""
        SELECT i, coalesce({plain}, false) AS plain, {columns}, {extra} AS extra
        FROM (SELECT *, chr(1) || array_to_string(key_list, chr(1)) || chr(1) AS keys FROM (
              SELECT i, payload, CASE WHEN candidate THEN json_keys(payload) END AS key_list,
                     CASE WHEN candidate THEN json_transform(payload, '{spec}') END AS v,
                     CASE WHEN candidate THEN {values} END AS nonstrings
              FROM (SELECT i, payload, {candidate} AS candidate
                    FROM (SELECT i, try(decode(payload)) AS payload, octet_length(payload) AS nbytes FROM batch))))"""


def parse_batch(payloads: Sequence[bytes | None], max_bytes: int) -> tuple[pa.Table, int]:
    """``parse_messages(payloads, max_bytes)`` as an Arrow table of text columns
    (``MESSAGE_COLUMNS``, in order), and how many of the payloads the reference parsed."""
    import duckdb
    import pyarrow as pa

    batch = pa.table({"i": pa.array(range(len(payloads)), pa.int64()), "payload": pa.array(payloads, pa.binary())})
    # Many small record batches: DuckDB scans one Arrow batch per thread.
    batch = pa.Table.from_batches(batch.to_batches(max_chunksize=4096), batch.schema)
    text = pa.schema([pa.field(c, pa.string()) for c in MESSAGE_COLUMNS])
    con = duckdb.connect()
    try:
        con.register("batch", batch)
        con.execute(f"CREATE TEMP TABLE parsed AS {_statement(max_bytes)}")
        others = con.sql("SELECT i FROM parsed WHERE NOT plain ORDER BY i").fetchnumpy()["i"].tolist()
        reference = parse_messages([payloads[i] for i in others], max_bytes)
        fallback = pa.Table.from_pandas(reference, preserve_index=False).cast(text).append_column(
            "i", pa.array(others, pa.int64()))
        con.register("fallback", fallback)
        table = con.sql(f"""
            SELECT * EXCLUDE (i) FROM (
                SELECT i, {", ".join(CHECKIN_COLUMNS)}, extra, NULL AS landing_error,
                       NULL AS landing_error_message, NULL AS raw_payload
                FROM parsed WHERE plain
                UNION ALL SELECT i, {", ".join(MESSAGE_COLUMNS)} FROM fallback)
            ORDER BY i""").to_arrow_table()
    finally:
        con.close()
    return table.cast(text), len(others)
