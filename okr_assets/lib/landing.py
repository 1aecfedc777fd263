"""Build okr_raw rows (text + lineage) from a landed file. Pure; the asset does the I/O."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

import pandas as pd

from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.lib.csv_reader import ParsedCsv, payload_preview
from okr_assets.lib.messages import parse_message
from okr_assets.lib.routing import route_partition_dates


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows_from_file(
    parsed: ParsedCsv, file_name: str, sha256: str, ingested_at: pd.Timestamp,
    first_partition: dt.date, run_id: str,
) -> pd.DataFrame:
    """okr_raw rows for a parsed CSV. The idempotency key is the content hash and line, so
    re-landing the same bytes (under any name) adds nothing, while a changed file lands again
    and its repeated check-ins are deduplicated downstream by ``checkin_id``."""
    rows = parsed.rows.copy()
    line = rows["line"].astype("string")
    rows["source"] = "file"
    rows["source_ref"] = file_name + ":" + line
    rows["source_key"] = f"file:{sha256}:" + line
    rows["ingested_at"] = ingested_at
    rows["partition_date"] = route_partition_dates(rows["checkin_at"], ingested_at, first_partition)
    rows["run_id"] = run_id
    return rows.drop(columns=["line"])


def unreadable_file_row(
    file_name: str, sha256: str, data: bytes, code: str, message: str,
    ingested_at: pd.Timestamp, run_id: str,
) -> pd.DataFrame:
    """One okr_raw row standing for a file that could not be read, so it is rejected (and
    counted) like any other bad input instead of disappearing into the quarantine folder."""
    row: dict[str, object] = {c: None for c in CHECKIN_COLUMNS}
    row.update(
        source="file",
        source_ref=file_name,
        source_key=f"file:{sha256}:0",
        ingested_at=ingested_at,
        partition_date=ingested_at.tz_convert(None).normalize(),
        landing_error=code,
        landing_error_message=f"{file_name}: {message}",
        raw_payload=payload_preview(data),
        extra=None,
        run_id=run_id,
    )
    return pd.DataFrame([row])


def rows_from_messages(
    messages: Sequence[tuple[int, int, bytes | None]], topic: str, epoch: int,
    ingested_at: pd.Timestamp, first_partition: dt.date, run_id: str, max_bytes: int,
) -> pd.DataFrame:
    """okr_raw rows for Kafka messages given as (partition, offset, value).

    The idempotency key is (topic, epoch, partition, offset); ``epoch`` changes when the topic is
    recreated, so restarted offsets never collide with rows landed from the old topic.
    """
    records = [parse_message(value, max_bytes) for _, _, value in messages]
    rows = pd.DataFrame.from_records(records, columns=[*CHECKIN_COLUMNS, "extra", "landing_error",
                                                       "landing_error_message", "raw_payload"])
    refs = [f"{topic}/{partition}/{offset}" for partition, offset, _ in messages]
    rows["source"] = "kafka"
    rows["source_ref"] = refs
    rows["source_key"] = [f"kafka:{topic}:{epoch}:{partition}:{offset}" for partition, offset, _ in messages]
    rows["ingested_at"] = ingested_at
    rows["partition_date"] = route_partition_dates(rows["checkin_at"], ingested_at, first_partition)
    rows["run_id"] = run_id
    return rows
