"""Read one check-in CSV export into text rows, keeping every row and the line it starts on.

Two readers, one result. Arrow's CSV reader (C++, no GIL held) reads a well-formed file: every
quote opens or closes a quoted field (RFC 4180, doubled quotes inside), no lone carriage return,
every row as wide as the header. Then a row's first line is known without parsing it: a newline
ends a row exactly when an even number of quotes precede it, which ``numpy`` counts over the
bytes. Any other file is read by the standard library's ``csv`` module, which reports each row's
line and keeps rows of the wrong width (``malformed_row``) in their place; neither Arrow's nor
DuckDB's reader reports the line of an accepted row, and pandas' drops or raises for a short one.
Both readers give the same rows for a well-formed file (``test_csv_reader`` checks that on
generated files).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from okr_assets.lib.contract import CHECKIN_COLUMNS, RejectReason

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

# Columns every landed row carries besides the contract's text columns.
ROW_COLUMNS: tuple[str, ...] = (*CHECKIN_COLUMNS, "extra", "line", "landing_error", "landing_error_message",
                                "raw_payload")
RAW_PAYLOAD_LIMIT = 2000
_BOM = b"\xef\xbb\xbf"
_QUOTE, _COMMA, _LF, _CR = 34, 44, 10, 13


def payload_preview(data: bytes) -> str:
    """The first RAW_PAYLOAD_LIMIT bytes as storable text: undecodable bytes and NUL (which
    PostgreSQL text cannot hold) both become U+FFFD."""
    return data[:RAW_PAYLOAD_LIMIT].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


class UnreadableFileError(ValueError):
    """The file cannot be read as a check-in CSV at all; it goes to quarantine."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = RejectReason.UNREADABLE_FILE.value


@dataclass(frozen=True)
class ParsedCsv:
    columns: dict[str, pa.Array]  # ROW_COLUMNS -> one Arrow array each ("line": int64, the rest text)
    extra_columns: tuple[str, ...]
    malformed_rows: int

    @property
    def row_count(self) -> int:
        return len(self.columns["line"])

    @cached_property
    def rows(self) -> pd.DataFrame:
        """One text row per check-in (``ROW_COLUMNS``), as a DataFrame; landing reads ``columns``."""
        import pyarrow as pa

        return pa.table(self.columns).to_pandas()


@dataclass(frozen=True)
class _Header:
    names: list[str]
    positions: list[int]  # of the contract's columns, in CHECKIN_COLUMNS order
    extras: list[tuple[int, str]]  # (position, name) of the other named columns

    @property
    def width(self) -> int:
        return len(self.names)


def read_checkin_csv(data: bytes) -> ParsedCsv:
    """Parse CSV bytes into one text row per check-in.

    Raises ``UnreadableFileError`` when the file as a whole is not a check-in CSV (undecodable,
    no header, header without the contract's columns, not CSV). Rows with the wrong number of
    fields are kept with ``landing_error = "malformed_row"`` so they are rejected downstream.
    """
    text = _decode(data)
    if "\x00" in text:
        raise UnreadableFileError("not a CSV text file: it contains NUL bytes")
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    return _read_well_formed(body) or _read_with_csv_module(text)


def _decode(data: bytes) -> str:
    try:
        # utf-8-sig tolerates (and strips) a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"not UTF-8: undecodable byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None


def _header(fields: list[str] | None) -> _Header:
    if not fields or all(not h.strip() for h in fields):
        raise UnreadableFileError("empty file: no header line")
    names = [h.strip() for h in fields]
    missing = [c for c in CHECKIN_COLUMNS if c not in names]
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise UnreadableFileError(
            f"wrong header: {len(missing)} contract column(s) missing ({shown}); "
            f"first header fields were {names[:5]!r}"
        )
    duplicated = sorted({h for h in names if names.count(h) > 1 and h})
    if duplicated:
        raise UnreadableFileError(f"wrong header: duplicated column(s) {duplicated}")
    return _Header(names, [names.index(c) for c in CHECKIN_COLUMNS],
                   [(i, h) for i, h in enumerate(names) if h not in CHECKIN_COLUMNS and h])


def _extra_json(header: _Header, values: list[list[str]]) -> list[str]:
    """The header's other columns of each row, as JSON text (``values``: one list per extra)."""
    names = [h for _, h in header.extras]
    return [json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) for row in zip(*values, strict=True)]


# -- the fast reader: Arrow, for well-formed files ------------------------------------------------


def _read_well_formed(data: bytes) -> ParsedCsv | None:
    """The file read by Arrow with each row's first line, or None when it is not well-formed
    (see the module docstring) and the ``csv`` module must read it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    b = np.frombuffer(data, dtype=np.uint8)
    n = len(b)
    if not n:
        _header(None)
    quotes = np.flatnonzero(b == _QUOTE)
    newlines = np.flatnonzero(b == _LF)
    if len(quotes) % 2 or np.count_nonzero(b == _CR) != np.count_nonzero(b[newlines[newlines > 0] - 1] == _CR):
        return None  # a quoted field runs to the end, or a lone \r (a line end for ``csv``)
    if len(quotes):
        before, after = _neighbours(b, quotes)
        adjacent_prev = np.r_[False, np.diff(quotes) == 1]
        adjacent_next = np.r_[np.diff(quotes) == 1, False]
        opening = np.arange(len(quotes)) % 2 == 0  # an even number of quotes before it
        ok = np.where(opening,
                      np.isin(before, (_COMMA, _LF, -1)) | ((before == _QUOTE) & adjacent_prev),
                      np.isin(after, (_COMMA, _LF, _CR, -1)) | ((after == _QUOTE) & adjacent_next))
        if not ok.all():
            return None  # a quote inside an unquoted field, or text after a closing quote
    ends_row = np.searchsorted(quotes, newlines) % 2 == 0
    terminators = newlines[ends_row]
    starts = np.r_[0, terminators + 1]
    stops = np.r_[terminators, n]
    first_lines = np.r_[1, np.flatnonzero(ends_row) + 2]  # the line each row starts on
    commas = np.flatnonzero(b == _COMMA)
    delimiters = commas[np.searchsorted(quotes, commas) % 2 == 0]
    widths = np.bincount(np.searchsorted(terminators, delimiters), minlength=len(starts)) + 1
    length = stops - starts
    blank = (length == 0) | ((length == 1) & (b[np.minimum(starts, n - 1)] == _CR))  # "" or "\r": no fields

    first = data[starts[0]:stops[0]].decode("utf-8")
    header = _header(None if blank[0] else next(csv.reader(io.StringIO(first, newline=""), strict=False), None))
    rows = ~blank
    rows[0] = False
    if (widths[rows] != header.width).any():
        return None  # a row of the wrong width: the csv reader keeps it as malformed_row, with its line
    names = [f"c{i}" for i in range(header.width)]
    body = data[stops[0] + 1:] if len(starts) > 1 else b""
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True),
            # Only an empty field is null: Arrow's default null markers ("NA", "null", ...) are text here.
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), null_values=[""],
                                                 strings_can_be_null=True, quoted_strings_can_be_null=True))
    except pa.ArrowInvalid:
        return None
    lines = first_lines[rows]
    if table.num_rows != len(lines):
        return None
    count = table.num_rows
    columns: dict[str, Any] = {c: table.column(p).combine_chunks() for c, p in zip(CHECKIN_COLUMNS, header.positions,
                                                                                   strict=True)}
    columns["extra"] = (pa.array(_extra_json(header, [table.column(p).fill_null("").to_pylist()
                                                      for p, _ in header.extras]), pa.string())
                        if header.extras else pa.nulls(count, pa.string()))
    columns["line"] = pa.array(lines.astype(np.int64))
    for column in ("landing_error", "landing_error_message", "raw_payload"):
        columns[column] = pa.nulls(count, pa.string())
    return ParsedCsv({c: columns[c] for c in ROW_COLUMNS}, tuple(h for _, h in header.extras), 0)


def _neighbours(b: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bytes before and after each position in ``at`` (-1 beyond either end of the file)."""
    import numpy as np

    padded = np.r_[np.int16(-1), b.astype(np.int16), np.int16(-1)]
    return padded[at], padded[at + 2]


# -- the exact reader: the csv module, for every other file ----------------------------------------


def _read_with_csv_module(text: str) -> ParsedCsv:
    """Any decodable file, row by row, with ``csv``'s RFC 4180 quoting (``strict=False``: a stray
    quote is text) and each row's first line; rows of the wrong width are kept as malformed."""
    import pyarrow as pa

    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    try:
        first = next(reader, None)
    except csv.Error as exc:
        raise UnreadableFileError(f"not CSV: {exc}") from None
    header = _header(first)
    records: list[list[str]] = []
    ends: list[int] = []  # the physical line each row ends on
    try:
        for fields in reader:
            records.append(fields)
            ends.append(reader.line_num)
    except csv.Error as exc:
        raise UnreadableFileError(f"not CSV near line {ends[-1] + 1 if ends else 2}: {exc}") from None
    # The physical line a row starts on (line 1 is the header); a blank line carries no check-in.
    starts = [2, *(end + 1 for end in ends[:-1])] if ends else []
    kept = [(fields, start) for fields, start in zip(records, starts, strict=True) if fields]
    width = header.width
    good = [fields if len(fields) == width else None for fields, _ in kept]
    columns: dict[str, Any] = {c: pa.array([(f[p] or None) if f is not None else None for f in good], pa.string())
                               for c, p in zip(CHECKIN_COLUMNS, header.positions, strict=True)}
    if header.extras:
        well_formed = [k for k, f in enumerate(good) if f is not None]
        extra = _extra_json(header, [[good[k][p] for k in well_formed] for p, _ in header.extras])
        spread: list[str | None] = [None] * len(kept)
        for k, value in zip(well_formed, extra, strict=True):
            spread[k] = value
        columns["extra"] = pa.array(spread, pa.string())
    else:
        columns["extra"] = pa.nulls(len(kept), pa.string())
    bad = [(fields, k) for k, (fields, _) in enumerate(kept) if len(fields) != width]
    error: list[str | None] = [None] * len(kept)
    message: list[str | None] = [None] * len(kept)
    payload: list[str | None] = [None] * len(kept)
    for fields, k in bad:
        error[k] = RejectReason.MALFORMED_ROW.value
        message[k] = f"row has {len(fields)} fields, the header has {width}"
        payload[k] = ",".join(fields)[:RAW_PAYLOAD_LIMIT]
    columns["landing_error"] = pa.array(error, pa.string())
    columns["landing_error_message"] = pa.array(message, pa.string())
    columns["raw_payload"] = pa.array(payload, pa.string())
    columns["line"] = pa.array([start for _, start in kept], pa.int64())
    return ParsedCsv({c: columns[c] for c in ROW_COLUMNS}, tuple(h for _, h in header.extras), len(bad))
