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
from functools import cached_property
from typing import Any

import numpy as np
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
    columns: dict[str, np.ndarray]  # ROW_COLUMNS -> one array each
    extra_columns: tuple[str, ...]
    malformed_rows: int

    @property
    def row_count(self) -> int:
        return len(self.columns["line"])

    @cached_property
    def rows(self) -> pd.DataFrame:
        """One text row per check-in (``ROW_COLUMNS``); built on first use, landing reads ``columns``."""
        return pd.DataFrame(self.columns, columns=list(ROW_COLUMNS), copy=False)


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
    kept = [k for k, fields in enumerate(records) if fields]
    if len(kept) < len(records):
        records, starts = [records[k] for k in kept], [starts[k] for k in kept]
    good = [k for k, fields in enumerate(records) if len(fields) == width]
    bad = [k for k, fields in enumerate(records) if len(fields) != width] if len(good) < len(records) else []

    # Column-wise: transpose the well-formed rows once, then one pass per contract column.
    n = len(records)
    well_formed = [records[k] for k in good] if bad else records
    by_position = list(zip(*well_formed, strict=True)) if well_formed else [()] * width
    columns: dict[str, Any] = {}
    for column, p in zip(CHECKIN_COLUMNS, positions, strict=True):
        values = by_position[p]
        columns[column] = [v or None for v in values] if "" in values else values
    columns["extra"] = (
        [json.dumps({h: fields[i] for i, h in extras}, ensure_ascii=False) for fields in well_formed] if extras
        else None)
    data = {c: _objects(v, len(well_formed)) for c, v in columns.items()}
    if bad:  # malformed rows keep their place, with a reason and the row as payload
        spread = {c: np.full(n, None, dtype=object) for c in data}
        for c, values in data.items():
            spread[c][good] = values
        data = spread
        data["landing_error"] = np.full(n, None, dtype=object)
        data["landing_error_message"] = np.full(n, None, dtype=object)
        data["raw_payload"] = np.full(n, None, dtype=object)
        for k in bad:
            fields = records[k]
            data["landing_error"][k] = RejectReason.MALFORMED_ROW.value
            data["landing_error_message"][k] = f"row has {len(fields)} fields, the header has {width}"
            data["raw_payload"][k] = ",".join(fields)[:RAW_PAYLOAD_LIMIT]
    else:
        for column in ("landing_error", "landing_error_message", "raw_payload"):
            data[column] = np.full(n, None, dtype=object)
    data["line"] = np.asarray(starts, dtype=np.int64)
    return ParsedCsv(columns={c: data[c] for c in ROW_COLUMNS}, extra_columns=tuple(h for _, h in extras),
                     malformed_rows=len(bad))


def _objects(values: Any, n: int) -> np.ndarray:
    """An object column of ``n`` values (None: all missing)."""
    out = np.empty(n, dtype=object)
    out[:] = values
    return out
