"""okr_raw: land check-ins from the landing folder or from Kafka, append-only and idempotent.

pandas and the landing functions (okr_assets.lib) are imported inside the functions that run the
landing: every process imports this module to load the code location, and must not pay for them.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field, field_validator, model_validator

from okr_assets.defs.ingestion.checks import OKR_RAW_SCHEMA, LandedRowsCheck
from okr_assets.defs.metadata import WAREHOUSE_KIND, column_schema
from okr_assets.defs.partitions import FIRST_PARTITION
from okr_assets.lib.memory import older_objects_frozen
from okr_assets.resources import KafkaResource, LandingFolderResource, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

OWNERS = ["team:okr-data-platform"]
TOUCHED_PARTITIONS = "okr/touched_partitions"
# Run tag: the okr_processed partition this landing run refreshes itself after landing.
REFRESHES_PARTITION = "okr/refreshes_partition"
_KAFKA_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class KafkaRange(Config):
    """An exact offset range of one topic partition: offsets ``start`` .. ``end - 1``."""

    topic: str = Field(description="Kafka topic: 1-249 of [a-zA-Z0-9._-], as Kafka itself requires.")
    partition: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    epoch: int = Field(default=0, ge=0, description="Incremented by the sensor when the topic was recreated.")

    @field_validator("topic")
    @classmethod
    def _legal_topic(cls, topic: str) -> str:
        # The topic ends up in lineage values (source_ref/source_key); refuse anything Kafka would.
        if not _KAFKA_TOPIC.fullmatch(topic) or topic in {".", ".."}:
            raise ValueError(f"{topic!r} is not a legal Kafka topic name")
        return topic

    @model_validator(mode="after")
    def _ordered(self) -> "KafkaRange":
        if self.end < self.start:
            raise ValueError(f"offset range end {self.end} is before start {self.start}")
        return self


class LandingConfig(Config):
    @field_validator("files")
    @classmethod
    def _plain_file_names(cls, files: list[str]) -> list[str]:
        # Names inside the landing folder only: no paths, so config can never reach other files.
        bad = [f for f in files if not f or Path(f).name != f or f in {".", ".."}]
        if bad:
            raise ValueError(f"not plain file names in the landing folder: {bad}")
        return files

    files: list[str] = Field(
        default_factory=list,
        description="File names in the landing folder to land. With no files and no Kafka ranges, "
                    "every *.csv in the landing folder is landed.",
    )
    kafka_ranges: list[KafkaRange] = Field(
        default_factory=list, description="Kafka offset ranges to land (set by okr_kafka_sensor).")


@dataclass
class _Tally:
    check: LandedRowsCheck | None  # None when okr_raw_schema is not part of the run
    rows_landed: int = 0
    rows_seen: int = 0
    files_skipped: int = 0
    quarantined: int = 0
    malformed: int = 0
    touched: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)


@asset(
    name="okr_raw",
    group_name="ingestion",
    owners=OWNERS,
    kinds={WAREHOUSE_KIND, "csv", "kafka", "pandas"},
    code_version="2",
    tags={"layer": "raw"},
    metadata={"dagster/column_schema": column_schema("okr_raw"), "dagster/table_name": "okr_raw.okr_raw"},
    check_specs=[OKR_RAW_SCHEMA],
)
def okr_raw(
    context: AssetExecutionContext, config: LandingConfig, warehouse: WarehouseResource,
    landing: LandingFolderResource, kafka: KafkaResource,
) -> MaterializeResult:
    """Every check-in exactly as landed (text) with lineage: file and line or topic/partition/offset.

    Append-only and idempotent: bytes of a file that already landed, and Kafka offsets that
    already landed, add nothing. Files that cannot be read at all are moved to the quarantine
    folder and recorded as one rejected row; bad messages land as rows that will be rejected.
    The blocking check okr_raw_schema validates the rows inserted, batch by batch, as they land.
    """
    import pandas as pd

    warehouse.setup()
    checked = OKR_RAW_SCHEMA.key in context.selected_asset_check_keys
    tally = _Tally(check=LandedRowsCheck(context.run.run_id) if checked else None)
    ingested_at = pd.Timestamp.now(tz="UTC")
    with older_objects_frozen():
        if config.kafka_ranges:
            _land_kafka(context, config.kafka_ranges, warehouse, kafka, ingested_at, tally)
        if config.files or not config.kafka_ranges:
            names = config.files or [e.name for e in landing.csv_files(settled_only=False)]
            _land_files(context, names, warehouse, landing, ingested_at, tally)

    ordered = sorted(tally.touched)
    return MaterializeResult(
        metadata={
            "dagster/row_count": warehouse.count("okr_raw"),
            "rows_landed": tally.rows_landed,
            "rows_already_landed": tally.rows_seen - tally.rows_landed,
            "sources": MetadataValue.json(tally.sources),
            "files_skipped_already_landed": tally.files_skipped,
            "files_quarantined": tally.quarantined,
            "malformed_rows": tally.malformed,
            TOUCHED_PARTITIONS: MetadataValue.json(ordered),
            "touched_partition_range": f"{ordered[0]} .. {ordered[-1]}" if ordered else "none",
        },
        check_results=[tally.check.result()] if tally.check else [],
    )


# Files are landed together, up to this many rows per transaction: one connection, one lookup of
# older versions and one commit per batch instead of per file (84 files of 100k rows: 22 s -> see
# README Performance), while a batch still bounds the memory of a run.
_LAND_BATCH_ROWS = 100_000


@dataclass
class _FileBatch:
    """Files read and parsed for one landing transaction, as okr_raw rows."""

    files: list[tuple[str, str, int]]  # (name, sha256, rows read)
    rows: "pd.DataFrame"
    malformed: int = 0
    quarantined: list[str] = field(default_factory=list)  # log lines for files moved to quarantine
    skipped: list[str] = field(default_factory=list)  # files whose bytes already landed


def _land_files(
    context: AssetExecutionContext, names: list[str], warehouse: WarehouseResource,
    landing: LandingFolderResource, ingested_at: "pd.Timestamp", tally: _Tally,
) -> None:
    """Land the files in batches of about ``_LAND_BATCH_ROWS`` rows, one transaction each. The
    next batch is read, parsed and turned into rows in a background thread while this one is
    written and checked: parsing holds the GIL, the database write mostly does not."""
    from okr_assets.lib.landing import sha256_of
    from okr_assets.lib.pipelining import overlapped

    present: list[tuple[str, Path, str]] = []
    for name in names:
        path = landing.landing / Path(name).name
        if not path.is_file():
            context.log.warning(f"{name}: no longer in {landing.landing}; nothing to land")
            continue
        present.append((name, path, sha256_of(path.read_bytes())))
    landed = warehouse.landed_digests(sorted({digest for _, _, digest in present}))
    skipped: list[str] = []
    batches = _file_batches(present, landed, landing, ingested_at, context.run.run_id)
    with overlapped(batches, name="okr-raw-reader") as read:
        for batch in read:
            for line in batch.quarantined:
                context.log.error(line)
            tally.malformed += batch.malformed
            tally.quarantined += len(batch.quarantined)
            tally.files_skipped += len(batch.skipped)
            skipped += batch.skipped
            if batch.files:
                _land_file_batch(context, batch, warehouse, tally)
    if skipped:
        context.log.info(f"{len(skipped)} file(s) skipped, their bytes already landed: {', '.join(skipped)}")


def _file_batches(
    present: list[tuple[str, Path, str]], landed: set[str], landing: LandingFolderResource,
    ingested_at: "pd.Timestamp", run_id: str,
) -> Iterator[_FileBatch]:
    """Read and parse the files not landed yet into batches of rows. No Dagster calls: this runs
    in a background thread, and a batch carries its log lines to the caller. A file that cannot
    be read is moved to quarantine and becomes one row, in its place among the others."""
    import pandas as pd

    from okr_assets.lib.csv_reader import ParsedCsv, UnreadableFileError, read_checkin_csv
    from okr_assets.lib.landing import rows_from_files, unreadable_file_row

    def batch_of(items: list[tuple[str, str, Any]], batch: _FileBatch) -> _FileBatch:
        # Consecutive readable files become rows together (one routing pass); the parsed files
        # are dropped once they are rows, so a batch waiting to be written holds only its rows.
        frames: list[pd.DataFrame] = []
        for readable, group in groupby(items, key=lambda item: isinstance(item[2], ParsedCsv)):
            files = list(group)
            if readable:
                frames.append(rows_from_files([(parsed, name, digest) for name, digest, parsed in files],
                                              ingested_at, FIRST_PARTITION, run_id))
            else:
                frames.extend(row for _, _, row in files)
        batch.files = [(name, digest, item.row_count if isinstance(item, ParsedCsv) else len(item))
                       for name, digest, item in items]
        if frames:
            batch.rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return batch

    items: list[tuple[str, str, Any]] = []  # (name, sha256, ParsedCsv or the row of an unreadable file)
    batch, batch_rows = _FileBatch([], pd.DataFrame()), 0
    for name, path, digest in present:
        if digest in landed:
            batch.skipped.append(f"{name} (sha256 {digest[:12]})")
            continue
        landed.add(digest)  # the same bytes twice in one run land once
        data = path.read_bytes()
        try:
            parsed = read_checkin_csv(data)
            batch.malformed += parsed.malformed_rows
            items.append((name, digest, parsed))
            batch_rows += parsed.row_count
        except UnreadableFileError as exc:
            target = landing.move_to_quarantine(path, str(exc))
            batch.quarantined.append(f"{name}: cannot be read ({exc}); moved to {target}")
            items.append((name, digest, unreadable_file_row(name, digest, data, exc.code, str(exc),
                                                            ingested_at, run_id)))
            batch_rows += 1
        del data
        if batch_rows >= _LAND_BATCH_ROWS:
            yield batch_of(items, batch)
            items, batch, batch_rows = [], _FileBatch([], pd.DataFrame()), 0
    if items or batch.skipped:
        yield batch_of(items, batch)


def _land_file_batch(context: AssetExecutionContext, batch: _FileBatch, warehouse: WarehouseResource,
                     tally: _Tally) -> None:
    """Land a batch of files in one transaction and check the rows it inserted."""
    rows = batch.rows
    result = warehouse.land_raw(rows, run_id=context.run.run_id,
                                files=[(digest, name) for name, digest, _ in batch.files])
    tally.rows_landed += result.inserted
    tally.rows_seen += len(rows)
    tally.touched |= result.touched_partitions
    if tally.check:
        tally.check.add(result.inserted_rows(rows))
    counts = []
    for name, digest, total in batch.files:
        tally.sources.append(name)
        counts.append(f"{name}: {result.inserted_by_file.get(digest, 0)} of {total}")
    context.log.info(f"{len(batch.files)} file(s) landed in one transaction, rows landed of rows read: "
                     f"{'; '.join(counts)}. They touch {len(result.touched_partitions)} okr_processed partition(s)")


def _land_kafka(
    context: AssetExecutionContext, ranges: list[KafkaRange], warehouse: WarehouseResource,
    kafka: KafkaResource, ingested_at: "pd.Timestamp", tally: _Tally,
) -> None:
    """Land each offset range in its own transaction, in order. While a range is written and
    checked here, the next one is read and parsed in a background thread (``overlapped``, as for
    files): reading is most of the time (kafka-python checks each record batch's CRC32C in pure
    Python), and the write mostly waits on the database. Ranges commit in order, and a failure
    stops the ranges after it."""
    from okr_assets.lib.landing import rows_from_messages
    from okr_assets.lib.pipelining import overlapped

    run_id = context.run.run_id

    def parsed_ranges() -> "Iterator[tuple[str, pd.DataFrame]]":
        for r in ranges:
            messages = kafka.read_range(r.topic, r.partition, r.start, r.end)
            rows = rows_from_messages([(m.partition, m.offset, m.value) for m in messages], r.topic, r.epoch,
                                      ingested_at, FIRST_PARTITION, run_id, kafka.max_message_bytes)
            del messages
            yield f"{r.topic}/{r.partition} offsets {r.start}..{r.end - 1}", rows

    with overlapped(parsed_ranges(), name="okr-raw-kafka-reader") as read:
        for label, rows in read:
            result = warehouse.land_raw(rows, run_id=run_id)
            if tally.check:
                tally.check.add(result.inserted_rows(rows))
            tally.rows_landed += result.inserted
            tally.rows_seen += len(rows)
            tally.touched |= result.touched_partitions
            tally.sources.append(label)
            bad = int(rows["landing_error"].notna().sum())
            context.log.info(f"{label}: read {len(rows)} message(s), landed {result.inserted} "
                             f"({len(rows) - result.inserted} already landed, {bad} unparseable)")
