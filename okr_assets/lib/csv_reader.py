"""Read one check-in CSV export into text rows, keeping every row and its line number.

We parse with the standard library's ``csv`` module rather than ``pandas.read_csv``: pandas'
C parser cannot report a row with the wrong number of fields together with its line number
(it either raises for the whole file or drops the row), and every row must be either landed
or rejected with a reason. ``csv`` implements RFC 4180 quoting, including quoted newlines.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pandas as pd

from okr_assets.lib.contract import CHECKIN_COLUMNS, RejectReason

# Columns every landed row carries besides the contract's text columns.
ROW_COLUMNS: tuple[str, ...] = (*CHECKIN_COLUMNS, "extra", "line", "landing_error", "landing_error_message",
                                "raw_payload")
RAW_PAYLOAD_LIMIT = 2000


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
    rows: pd.DataFrame
    extra_columns: tuple[str, ...]
    malformed_rows: int


def _decode(data: bytes) -> str:
    try:
        # utf-8-sig tolerates (and strips) a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"not UTF-8: undecodable byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None


def read_checkin_csv(data: bytes) -> ParsedCsv:
    """Parse CSV bytes into one text row per check-in.

    Raises ``UnreadableFileError`` when the file as a whole is not a check-in CSV (undecodable,
    no header, header without the contract's columns, not CSV). Rows with the wrong number of
    fields are kept with ``landing_error = "malformed_row"`` so they are rejected downstream.
    """
    text = _decode(data)
    if "\x00" in text:
        raise UnreadableFileError("not a CSV text file: it contains NUL bytes")
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise UnreadableFileError(f"not CSV: {exc}") from None
    if not header or all(not h.strip() for h in header):
        raise UnreadableFileError("empty file: no header line")
    header = [h.strip() for h in header]
    missing = [c for c in CHECKIN_COLUMNS if c not in header]
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise UnreadableFileError(
            f"wrong header: {len(missing)} contract column(s) missing ({shown}); "
            f"first header fields were {header[:5]!r}"
        )
    duplicated = sorted({h for h in header if header.count(h) > 1 and h})
    if duplicated:
        raise UnreadableFileError(f"wrong header: duplicated column(s) {duplicated}")

    positions = [header.index(c) for c in CHECKIN_COLUMNS]
    extras = [(i, h) for i, h in enumerate(header) if h not in CHECKIN_COLUMNS and h]
    width = len(header)
    records: list[tuple] = []
    malformed = 0
    next_line = 2  # the physical line a row starts on (line 1 is the header)
    try:
        for fields in reader:
            start_line = next_line
            next_line = reader.line_num + 1
            if not fields:  # a blank line carries no check-in
                continue
            if len(fields) != width:
                malformed += 1
                payload = ",".join(fields)[:RAW_PAYLOAD_LIMIT]
                records.append(
                    (*([None] * len(CHECKIN_COLUMNS)), None, start_line,
                     RejectReason.MALFORMED_ROW.value,
                     f"row has {len(fields)} fields, the header has {width}", payload)
                )
                continue
            values = [fields[p] if fields[p] != "" else None for p in positions]
            extra = (
                json.dumps({h: fields[i] for i, h in extras}, ensure_ascii=False) if extras else None
            )
            records.append((*values, extra, start_line, None, None, None))
    except csv.Error as exc:
        raise UnreadableFileError(f"not CSV near line {next_line}: {exc}") from None

    rows = pd.DataFrame.from_records(records, columns=list(ROW_COLUMNS))
    rows["line"] = rows["line"].astype("int64")
    return ParsedCsv(rows=rows, extra_columns=tuple(h for _, h in extras), malformed_rows=malformed)
