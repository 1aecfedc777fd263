"""okr_raw: land check-ins from the landing folder or from Kafka, append-only and idempotent.

pandas and the landing functions (okr_assets.lib) are imported inside the functions that run the
landing: every process imports this module to load the code location, and must not pay for them.
"""

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field, field_validator, model_validator

from okr_assets.defs.ingestion.checks import OKR_RAW_SCHEMA, LandedRowsCheck
from okr_assets.defs.metadata import WAREHOUSE_KIND, column_schema
from okr_assets.defs.partitions import FIRST_PARTITION
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
    with _older_objects_frozen():
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


def _land_files(
    context: AssetExecutionContext, names: list[str], warehouse: WarehouseResource,
    landing: LandingFolderResource, ingested_at: "pd.Timestamp", tally: _Tally,
) -> None:
    from okr_assets.lib.csv_reader import UnreadableFileError, read_checkin_csv
    from okr_assets.lib.landing import sha256_of, unreadable_file_row

    run_id = context.run.run_id
    present: list[tuple[str, Path, str]] = []
    for name in names:
        path = landing.landing / Path(name).name
        if not path.is_file():
            context.log.warning(f"{name}: no longer in {landing.landing}; nothing to land")
            continue
        present.append((name, path, sha256_of(path.read_bytes())))
    landed = warehouse.landed_digests(sorted({digest for _, _, digest in present}))
    batch: list[tuple[str, str, Any]] = []  # (name, sha256, ParsedCsv or the row of an unreadable file)
    batch_rows = 0
    skipped: list[str] = []
    for name, path, digest in present:
        if digest in landed:
            tally.files_skipped += 1
            skipped.append(f"{name} (sha256 {digest[:12]})")
            continue
        landed.add(digest)  # the same bytes twice in one run land once
        data = path.read_bytes()
        try:
            parsed = read_checkin_csv(data)
            tally.malformed += parsed.malformed_rows
            batch.append((name, digest, parsed))
            batch_rows += parsed.row_count
        except UnreadableFileError as exc:
            target = landing.move_to_quarantine(path, str(exc))
            tally.quarantined += 1
            context.log.error(f"{name}: cannot be read ({exc}); moved to {target}")
            batch.append((name, digest, unreadable_file_row(name, digest, data, exc.code, str(exc), ingested_at,
                                                            run_id)))
            batch_rows += 1
        if batch_rows >= _LAND_BATCH_ROWS:
            _land_file_batch(context, batch, warehouse, ingested_at, run_id, tally)
            batch, batch_rows = [], 0
    if batch:
        _land_file_batch(context, batch, warehouse, ingested_at, run_id, tally)
    if skipped:
        context.log.info(f"{len(skipped)} file(s) skipped, their bytes already landed: {', '.join(skipped)}")


def _land_file_batch(context: AssetExecutionContext, batch: list[tuple[str, str, Any]],
                     warehouse: WarehouseResource, ingested_at: "pd.Timestamp", run_id: str, tally: _Tally) -> None:
    """Land a batch of files in one transaction. Consecutive readable files become rows together
    (one routing pass); an unreadable file's row keeps its place between them."""
    import pandas as pd

    from okr_assets.lib.csv_reader import ParsedCsv
    from okr_assets.lib.landing import rows_from_files

    frames: list[pd.DataFrame] = []
    for readable, group in groupby(batch, key=lambda item: isinstance(item[2], ParsedCsv)):
        items = list(group)
        if readable:
            frames.append(rows_from_files([(parsed, name, digest) for name, digest, parsed in items],
                                          ingested_at, FIRST_PARTITION, run_id))
        else:
            frames.extend(row for _, _, row in items)
    rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    result = warehouse.land_raw(rows, run_id=run_id, files=[(digest, name) for name, digest, _ in batch])
    tally.rows_landed += result.inserted
    tally.rows_seen += len(rows)
    tally.touched |= result.touched_partitions
    if tally.check:
        tally.check.add(result.inserted_rows(rows))
    counts = []
    for name, digest, item in batch:
        tally.sources.append(name)
        total = item.row_count if isinstance(item, ParsedCsv) else len(item)
        counts.append(f"{name}: {result.inserted_by_file.get(digest, 0)} of {total}")
    context.log.info(f"{len(batch)} file(s) landed in one transaction, rows landed of rows read: "
                     f"{'; '.join(counts)}. They touch {len(result.touched_partitions)} okr_processed partition(s)")


def _land_kafka(
    context: AssetExecutionContext, ranges: list[KafkaRange], warehouse: WarehouseResource,
    kafka: KafkaResource, ingested_at: "pd.Timestamp", tally: _Tally,
) -> None:
    """Land each offset range in its own transaction, in order. While a range is written (a
    writer thread that mostly waits on the database), the next one is read: reading is most of
    the time (kafka-python checks each record batch's CRC32C in pure Python). A range starts to
    be written only after the one before it committed, and a failure stops the ranges after it."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from okr_assets.lib.landing import rows_from_messages

    run_id = context.run.run_id

    def write(label: str, rows: "pd.DataFrame") -> tuple[str, "pd.DataFrame", Any]:
        result = warehouse.land_raw(rows, run_id=run_id)
        if tally.check:
            tally.check.add(result.inserted_rows(rows))
        return label, rows, result

    def written(future: Future) -> None:
        label, rows, result = future.result()
        tally.rows_landed += result.inserted
        tally.rows_seen += len(rows)
        tally.touched |= result.touched_partitions
        tally.sources.append(label)
        bad = int(rows["landing_error"].notna().sum())
        context.log.info(f"{label}: read {len(rows)} message(s), landed {result.inserted} "
                         f"({len(rows) - result.inserted} already landed, {bad} unparseable)")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="okr-raw-writer") as writer:
        pending: Future | None = None
        for r in ranges:
            label = f"{r.topic}/{r.partition} offsets {r.start}..{r.end - 1}"
            messages = kafka.read_range(r.topic, r.partition, r.start, r.end)
            rows = rows_from_messages([(m.partition, m.offset, m.value) for m in messages], r.topic, r.epoch,
                                      ingested_at, FIRST_PARTITION, run_id, kafka.max_message_bytes)
            del messages
            if pending is not None:
                written(pending)
            pending = writer.submit(write, label, rows)
        if pending is not None:
            written(pending)


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the objects that existed before landing out of Python's full garbage collections.

    Landing holds tens of thousands of fresh containers at a time (a record and a dict per
    message, a list per CSV row); they trigger full collections, and each one walked every object
    of the process, Dagster's and the libraries' included: ~0.15 s each, ~1 s per 100,000
    messages. Frozen, those are skipped; objects made while landing are collected as usual, and
    ``gc.unfreeze`` hands the older ones back to the collector when landing ends (unless the
    process had frozen objects of its own before: those stay frozen, as it chose).
    """
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()
