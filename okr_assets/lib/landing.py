"""Build okr_raw rows (text + lineage) from a landed file. Pure; the asset does the I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.lib.csv_reader import ROW_COLUMNS, ParsedCsv, payload_preview

if TYPE_CHECKING:
    import pyarrow as pa


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows_from_file(
    parsed: ParsedCsv, file_name: str, sha256: str, ingested_at: pd.Timestamp, run_id: str,
) -> pd.DataFrame:
    """okr_raw rows for a parsed CSV, as a DataFrame. The idempotency key is the content hash and
    line, so re-landing the same bytes (under any name) adds nothing, while a changed file lands
    again and its repeated check-ins are deduplicated downstream by ``checkin_id``."""
    return rows_from_files([(parsed, file_name, sha256)], ingested_at, run_id).to_pandas()


def rows_from_files(
    files: Sequence[tuple[ParsedCsv, str, str]], ingested_at: pd.Timestamp, run_id: str,
) -> pa.Table:
    """``rows_from_file`` for several parsed CSVs (parsed, file name, sha256) at once, in order,
    as one Arrow table for a whole landing batch: built by Arrow's kernels without a Python
    object per value, and scanned by DuckDB without the GIL while the next batch is parsed. The
    rows' partitions are decided by the engine as they land (``WarehouseResource.land_raw``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def concat(arrays: list[pa.Array], type_: pa.DataType) -> pa.Array:
        return pa.concat_arrays(arrays) if arrays else pa.array([], type_)

    def per_file(value: Callable[[str, str], str]) -> pa.Array:
        return concat([pa.repeat(pa.scalar(value(name, sha256), pa.string()), parsed.row_count)
                       for parsed, name, sha256 in files], pa.string())

    columns: dict[str, pa.Array] = {c: concat([parsed.columns[c] for parsed, _, _ in files], pa.string())
                                    for c in ROW_COLUMNS if c != "line"}
    lines = pc.cast(concat([parsed.columns["line"] for parsed, _, _ in files], pa.int64()), pa.string())
    n = len(lines)
    columns.update(
        source=pa.repeat(pa.scalar("file"), n),
        source_ref=pc.binary_join_element_wise(per_file(lambda name, _: name), lines, ":"),
        source_key=pc.binary_join_element_wise(per_file(lambda _, sha256: f"file:{sha256}"), lines, ":"),
        ingested_at=pa.repeat(pa.scalar(ingested_at.to_pydatetime(), pa.timestamp("us", tz="UTC")), n),
        run_id=pa.repeat(pa.scalar(run_id, pa.string()), n),
    )
    return pa.table(columns)


def as_table(rows: pd.DataFrame | pa.Table) -> pa.Table:
    """Landing rows as an Arrow table (a column that is all null in a DataFrame becomes text)."""
    import pyarrow as pa

    if isinstance(rows, pa.Table):
        return rows
    table = pa.Table.from_pandas(rows, preserve_index=False)
    return table.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                                 for f in table.schema]))


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
        landing_error=code,
        landing_error_message=f"{file_name}: {message}",
        raw_payload=payload_preview(data),
        extra=None,
        run_id=run_id,
    )
    return pd.DataFrame([row])


def rows_from_messages(
    messages: Sequence[tuple[int, int, bytes | None]], topic: str, epoch: int,
    ingested_at: pd.Timestamp, run_id: str, max_bytes: int,
) -> pa.Table:
    """okr_raw rows for Kafka messages given as (partition, offset, value), as one Arrow table
    (the payloads parsed by ``messages_duckdb.parse_batch``, the lineage by Arrow's kernels).

    The idempotency key is (topic, epoch, partition, offset); ``epoch`` changes when the topic is
    recreated, so restarted offsets never collide with rows landed from the old topic.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from okr_assets.lib.messages_duckdb import parse_batch

    rows, _ = parse_batch([value for _, _, value in messages], max_bytes)
    n = rows.num_rows
    partitions = pc.cast(pa.array([p for p, _, _ in messages], pa.int64()), pa.string())
    offsets = pc.cast(pa.array([o for _, o, _ in messages], pa.int64()), pa.string())
    lineage = {
        "source": pa.repeat(pa.scalar("kafka"), n),
        "source_ref": pc.binary_join_element_wise(pa.repeat(pa.scalar(topic), n), partitions, offsets, "/"),
        "source_key": pc.binary_join_element_wise(pa.repeat(pa.scalar(f"kafka:{topic}:{epoch}"), n), partitions,
                                                  offsets, ":"),
        "ingested_at": pa.repeat(pa.scalar(ingested_at.to_pydatetime(), pa.timestamp("us", tz="UTC")), n),
        "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
    }
    for name, column in lineage.items():
        rows = rows.append_column(name, column)
    return rows


def lost_range_rows(
    topic: str, epoch: int, partition: int, lost: Sequence[tuple[int, int]], ingested_at: pd.Timestamp,
    run_id: str,
) -> pd.DataFrame:
    """One okr_raw row per offset range (``start``, ``end`` exclusive) that the broker no longer
    held when it was read, so the loss is rejected (``lost_before_landing``) and counted like
    any other bad input instead of vanishing. Its key can never equal a message's key."""
    rows = []
    for start, end in lost:
        row: dict[str, object] = dict.fromkeys(CHECKIN_COLUMNS)
        row.update(
            source="kafka",
            source_ref=f"{topic}/{partition}/{start}-{end - 1}",
            source_key=f"kafka-lost:{topic}:{epoch}:{partition}:{start}-{end - 1}",
            ingested_at=ingested_at,
            landing_error="lost_before_landing",
            landing_error_message=f"{topic}/{partition}: offsets {start}..{end - 1} ({end - start} message(s)) "
                                  "were no longer held by the broker when they were read (deleted by retention "
                                  "or lost by the broker) and could not be landed",
            raw_payload=None,
            extra=None,
            run_id=run_id,
        )
        rows.append(row)
    return pd.DataFrame(rows)
