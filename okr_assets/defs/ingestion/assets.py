"""okr_raw: land check-ins from the landing folder or from Kafka, append-only and idempotent.

pandas and the landing functions (okr_assets.lib) are imported inside the functions that run the
landing: every process imports this module to load the code location, and must not pay for them.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field, field_validator, model_validator

from okr_assets.defs.ingestion.checks import OKR_RAW_SCHEMA, LandedRowsCheck
from okr_assets.defs.metadata import WAREHOUSE_KIND, column_schema
from okr_assets.defs.partitions import FIRST_PARTITION
from okr_assets.lib.memory import older_objects_frozen, release_arrow_memory
from okr_assets.resources import KafkaResource, LandingFolderResource, WarehouseResource
from okr_assets.resources.landing import FileRead, NotLandableError
from okr_assets.resources.warehouse import FileVersion, LandResult, OffsetRange, landing_table

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from okr_assets.resources.kafka import RangeRead

OWNERS = ["team:okr-data-platform"]
TOUCHED_PARTITIONS = "okr/touched_partitions"
# Materialization metadata: Kafka offset ranges the broker no longer held (okr_alert_sensor alerts).
LOST_RANGES = "kafka_offsets_lost"
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
    not_landable: int = 0
    malformed: int = 0
    touched: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # "topic/partition/first-last" per lost offset range
    messages_lost: int = 0
    earlier_runs: set[str] = field(default_factory=set)  # runs that landed rows this run found there


class _AuditFailed(Exception):
    """A landing batch broke okr_raw_schema: its transaction is rolled back, landing stops."""


@asset(
    name="okr_raw",
    group_name="ingestion",
    owners=OWNERS,
    kinds={WAREHOUSE_KIND, "csv", "kafka", "pandas"},
    code_version="3",
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
    already landed, add nothing. Each landing transaction also records what it read in the
    landing ledger (``okr_raw.landed_files``, ``okr_raw.landed_offsets``), which the sensors
    compare with the sources. Files that cannot be read at all become one rejected row and are
    moved to the quarantine folder once that row is committed; bad messages land as rows that
    will be rejected, and Kafka offsets the broker no longer holds as one rejected row per range.
    The blocking check okr_raw_schema validates each batch before its transaction commits: a
    failing batch is rolled back.
    """
    import pandas as pd

    warehouse.setup()
    checked = OKR_RAW_SCHEMA.key in context.selected_asset_check_keys
    tally = _Tally(check=LandedRowsCheck(context.run.run_id) if checked else None)
    ingested_at = pd.Timestamp.now(tz="UTC")
    try:
        with older_objects_frozen(), suppress(_AuditFailed):
            if config.kafka_ranges:
                _land_kafka(context, config.kafka_ranges, warehouse, kafka, ingested_at, tally)
            if config.files or not config.kafka_ranges:
                names = config.files or [e.name for e in landing.csv_files(settled_only=False)]
                _land_files(context, names, warehouse, landing, ingested_at, tally)
    finally:
        release_arrow_memory()  # the next steps of the run (the cascade) need it for the engine
    _cascade_unreported(context, warehouse, tally)

    ordered = sorted(tally.touched)
    return MaterializeResult(
        metadata={
            "dagster/row_count": warehouse.count("okr_raw"),
            "rows_landed": tally.rows_landed,
            "rows_already_landed": tally.rows_seen - tally.rows_landed,
            "sources": MetadataValue.json(tally.sources),
            "files_skipped_already_landed": tally.files_skipped,
            "files_quarantined": tally.quarantined,
            "files_not_landable": tally.not_landable,
            "malformed_rows": tally.malformed,
            LOST_RANGES: MetadataValue.json(tally.lost),
            "messages_lost": tally.messages_lost,
            TOUCHED_PARTITIONS: MetadataValue.json(ordered),
            "touched_partition_range": f"{ordered[0]} .. {ordered[-1]}" if ordered else "none",
        },
        check_results=[tally.check.result(warehouse)] if tally.check else [],
    )


def _cascade_unreported(context: AssetExecutionContext, warehouse: WarehouseResource, tally: _Tally) -> None:
    """Rows an earlier run committed but never reported (it died, or failed, after a commit) are in
    no materialization, so the refresh cascade would not know their partitions: report them here.
    A run that succeeded reported its own; one still in flight will."""
    from dagster import DagsterRunStatus

    silent = []
    for run_id in sorted(tally.earlier_runs - {context.run.run_id}):
        run = context.instance.get_run_by_id(run_id)
        if run is None or run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            silent.append(run_id)
    if silent:
        partitions = warehouse.partitions_landed_by(silent)
        tally.touched |= partitions
        runs = ", ".join(r[:8] for r in silent)
        context.log.info(f"rows landed by {len(silent)} earlier run(s) that did not finish ({runs}) are cascaded "
                         f"with this landing: {len(partitions)} okr_processed partition(s)")


def _audit(tally: _Tally, warehouse: WarehouseResource,
           ) -> "Callable[[LandResult, Callable[..., pd.DataFrame]], None]":
    """The check of one landing batch, run in the warehouse inside its transaction before the commit."""

    def audit(result: LandResult, fetch: "Callable[..., pd.DataFrame]") -> None:
        if tally.check is not None:
            tally.check.add(warehouse, result, fetch)
            if tally.check.failed:
                raise _AuditFailed
    return audit


# Files are landed together, up to this many rows per transaction: one connection, one lookup of
# older versions and one commit per batch instead of per file, while a batch still bounds the
# memory of a run. DuckDB writes each full row group (122,880 rows) of a transaction straight to
# the database file as it is inserted, instead of to the WAL and again at the checkpoint on
# commit: with 200,000 rows a batch a million land in about half the time of 100,000 a batch, at
# a peak RSS of ~0.9 GB (benchmarks/batch_pipeline.py). Files are read ahead up to _LOOKUP_BYTES
# for one query of landed hashes.
_LAND_BATCH_ROWS = 200_000
_LOOKUP_BYTES = 16 << 20
_LOOKUP_FILES = 200


@dataclass
class _FileBatch:
    """Files read and parsed for one landing transaction, as okr_raw rows."""

    files: list[FileVersion] = field(default_factory=list)  # versions whose rows are in ``rows``
    rows: "pa.Table | None" = None
    row_counts: dict[str, int] = field(default_factory=dict)  # rows read per sha256
    malformed: int = 0
    unreadable: list[tuple[FileVersion, str]] = field(default_factory=list)  # quarantined after the commit
    already: list[FileVersion] = field(default_factory=list)  # bytes landed before: recorded as read
    notes: list[str] = field(default_factory=list)  # entries that could not be read (warnings)
    earlier_runs: set[str] = field(default_factory=set)  # runs that landed the ``already`` bytes


def _land_files(
    context: AssetExecutionContext, names: list[str], warehouse: WarehouseResource,
    landing: LandingFolderResource, ingested_at: "pd.Timestamp", tally: _Tally,
) -> None:
    """Land the files in batches of about ``_LAND_BATCH_ROWS`` rows, one transaction each. The
    next batch is read, parsed and turned into rows in a background thread while this one is
    written and checked: parsing holds the GIL, the database write mostly does not."""
    from okr_assets.lib.pipelining import overlapped

    run_id = context.run.run_id
    skipped: list[str] = []
    with overlapped(_file_batches(names, warehouse, landing, ingested_at, run_id), name="okr-raw-reader") as read:
        for batch in read:
            for line in batch.notes:
                context.log.warning(line)
            tally.not_landable += len(batch.notes)
            tally.malformed += batch.malformed
            if batch.files:
                _land_file_batch(context, batch, warehouse, tally)
            tally.earlier_runs |= batch.earlier_runs
            if batch.already:
                warehouse.record_file_versions(batch.already, run_id)
                tally.files_skipped += len(batch.already)
                skipped += [f"{f.name} (sha256 {f.sha256[:12]})" for f in batch.already]
            # Only now, with the unreadable_file row committed, may an unreadable file leave the
            # folder; one recorded before (a run that died before moving it) goes now too.
            for version, error in batch.unreadable:
                target = landing.move_to_quarantine(version.name, error, f"{version.mtime_ns}:{version.size}")
                if target is None:
                    context.log.warning(f"{version.name}: unreadable ({error}), but it changed or vanished "
                                        "before it could be quarantined; a new version lands on its own")
                else:
                    tally.quarantined += 1
                    context.log.error(f"{version.name}: cannot be read ({error}); recorded as one "
                                      f"unreadable_file reject and moved to {target}")
    if skipped:
        context.log.info(f"{len(skipped)} file(s) skipped, their bytes already landed: {', '.join(skipped)}")


def _file_batches(
    names: list[str], warehouse: WarehouseResource, landing: LandingFolderResource,
    ingested_at: "pd.Timestamp", run_id: str,
) -> Iterator[_FileBatch]:
    """Read each file once, hash the bytes read and parse the same bytes; group the files not
    landed yet into batches of rows. No Dagster calls: this runs in a background thread, and a
    batch carries its log lines to the caller. A file that cannot be parsed becomes one row,
    in its place among the others."""
    import pandas as pd

    from okr_assets.lib.csv_reader import ParsedCsv, UnreadableFileError, read_checkin_csv
    from okr_assets.lib.landing import rows_from_files, sha256_of, unreadable_file_row

    def reads() -> "Iterator[list[tuple[str, FileRead, str]]]":
        # A few files at a time, so one query tells which of their hashes already landed.
        chunk: list[tuple[str, FileRead, str]] = []
        size = 0
        for name in names:
            try:
                read = landing.read(name)
            except FileNotFoundError:
                notes.append(f"{name}: no longer in {landing.landing}; nothing to land")
                continue
            except NotLandableError as exc:
                notes.append(f"{exc}: skipped")
                continue
            chunk.append((name, read, sha256_of(read.data)))
            size += read.size
            if size >= _LOOKUP_BYTES or len(chunk) >= _LOOKUP_FILES:
                yield chunk
                chunk, size = [], 0
        if chunk:
            yield chunk

    def batch_of(items: list[tuple[FileVersion, object]], batch: _FileBatch) -> _FileBatch:
        # Consecutive readable files become rows together (one routing pass).
        frames: list[pd.DataFrame | pa.Table] = []
        for readable, group in groupby(items, key=lambda item: isinstance(item[1], ParsedCsv)):
            files = list(group)
            if readable:
                frames.append(rows_from_files([(parsed, v.name, v.sha256) for v, parsed in files],
                                              ingested_at, run_id))
            else:
                frames.extend(row for _, row in files)
        batch.files = [v for v, _ in items]
        if frames:
            batch.rows = landing_table(frames)
        return batch

    notes: list[str] = []
    # sha256 -> (unreadable, the run that landed them), of the bytes landed before or earlier in this run
    seen: dict[str, tuple[bool, str | None]] = {}
    items: list[tuple[FileVersion, object]] = []  # (version, ParsedCsv or the row of an unreadable file)
    batch, batch_rows = _FileBatch(), 0
    for chunk in reads():
        seen.update(warehouse.landed_file_digests(sorted({d for _, _, d in chunk} - set(seen))))
        for name, read, digest in chunk:
            version = FileVersion(digest, name, read.size, read.mtime_ns)
            if digest in seen:
                unreadable, landed_by = seen[digest]
                batch.already.append(FileVersion(digest, name, read.size, read.mtime_ns, unreadable=unreadable))
                batch.earlier_runs |= {landed_by} if landed_by and landed_by != run_id else set()
                if unreadable:
                    batch.unreadable.append((batch.already[-1], _unreadable_reason(read.data)))
                continue
            try:
                parsed = read_checkin_csv(read.data)
                batch.malformed += parsed.malformed_rows
                items.append((version, parsed))
                batch.row_counts[digest] = parsed.row_count
                batch_rows += parsed.row_count
                seen[digest] = (False, run_id)
            except UnreadableFileError as exc:
                version = FileVersion(digest, name, read.size, read.mtime_ns, unreadable=True)
                items.append((version, unreadable_file_row(name, digest, read.data, exc.code, str(exc),
                                                           ingested_at, run_id)))
                batch.unreadable.append((version, str(exc)))
                batch.row_counts[digest] = 1
                batch_rows += 1
                seen[digest] = (True, run_id)
            if batch_rows >= _LAND_BATCH_ROWS:
                batch.notes, notes = notes, []
                yield batch_of(items, batch)
                items, batch, batch_rows = [], _FileBatch(), 0
        del chunk
    batch.notes = notes
    if items or batch.already or batch.notes:
        yield batch_of(items, batch)


def _unreadable_reason(data: bytes) -> str:
    """Why bytes recorded as unreadable cannot be read (parsed again: the ledger keeps no text)."""
    from okr_assets.lib.csv_reader import UnreadableFileError, read_checkin_csv

    try:
        read_checkin_csv(data)
    except UnreadableFileError as exc:
        return str(exc)
    return "recorded as unreadable when it landed"


def _land_file_batch(context: AssetExecutionContext, batch: _FileBatch, warehouse: WarehouseResource,
                     tally: _Tally) -> None:
    """Land a batch of files in one transaction, checked before it commits."""
    rows = batch.rows
    result = warehouse.land_raw(rows, FIRST_PARTITION, run_id=context.run.run_id, files=batch.files,
                                audit=_audit(tally, warehouse))
    tally.earlier_runs |= result.earlier_runs
    tally.rows_landed += result.inserted
    tally.rows_seen += len(rows)
    tally.touched |= result.touched_partitions
    counts = []
    for version in batch.files:
        tally.sources.append(version.name)
        counts.append(f"{version.name}: {result.inserted_by_file.get(version.sha256, 0)} of "
                      f"{batch.row_counts.get(version.sha256, 0)}")
    context.log.info(f"{len(batch.files)} file(s) landed in one transaction, rows landed of rows read: "
                     f"{'; '.join(counts)}. They touch {len(result.touched_partitions)} okr_processed partition(s)")


def _land_kafka(
    context: AssetExecutionContext, ranges: list[KafkaRange], warehouse: WarehouseResource,
    kafka: KafkaResource, ingested_at: "pd.Timestamp", tally: _Tally,
) -> None:
    """Land each offset range in its own transaction, in order, with its entry in the landing
    ledger. Three stages overlap (``overlapped``): while a range is written and checked here, the
    next is parsed (by DuckDB, without the GIL) in one background thread and the one after it is
    read from Kafka (kafka-python, which holds the GIL) in another. Ranges commit in order, and a failure stops the
    ranges after it. Offsets the broker no longer holds become one ``lost_before_landing`` row
    and a lost entry in the ledger each (accounted for: never asked for again), and an error in
    the log."""

    from okr_assets.lib.landing import lost_range_rows, rows_from_messages
    from okr_assets.lib.pipelining import overlapped
    from okr_assets.lib.ranges import uncovered

    run_id = context.run.run_id

    def read_ranges() -> "Iterator[tuple[KafkaRange, RangeRead]]":
        for r in ranges:
            yield r, kafka.read_range(r.topic, r.partition, r.start, r.end)

    def parsed_ranges(reads: "Iterator[tuple[KafkaRange, RangeRead]]",
                      ) -> "Iterator[tuple[KafkaRange, pa.Table, list[OffsetRange], list[tuple[int, int]], int]]":
        for r, read in reads:
            rows = rows_from_messages([(m.partition, m.offset, m.value) for m in read.messages], r.topic, r.epoch,
                                      ingested_at, run_id, kafka.max_message_bytes)
            offsets = [m.offset for m in read.messages]
            ledger = [OffsetRange(r.topic, r.epoch, r.partition, lo, hi, sum(lo <= o < hi for o in offsets))
                      for lo, hi in uncovered(r.start, r.end, read.lost)]
            lost, messages = read.lost, len(read.messages)
            pieces = [rows]
            if lost:
                pieces.append(lost_range_rows(r.topic, r.epoch, r.partition, lost, ingested_at, run_id))
                ledger += [OffsetRange(r.topic, r.epoch, r.partition, lo, hi, lost=True) for lo, hi in lost]
            del read, offsets
            yield r, landing_table(pieces), ledger, lost, messages

    with overlapped(read_ranges(), parsed_ranges, name="okr-raw-kafka") as read:
        for r, rows, ledger, lost, messages in read:
            label = f"{r.topic}/{r.partition} offsets {r.start}..{r.end - 1}"
            result = warehouse.land_raw(rows, FIRST_PARTITION, run_id=run_id, offsets=ledger,
                                       audit=_audit(tally, warehouse))
            tally.earlier_runs |= result.earlier_runs
            tally.rows_landed += result.inserted
            tally.rows_seen += len(rows)
            tally.touched |= result.touched_partitions
            tally.sources.append(label)
            for lo, hi in lost:
                tally.lost.append(f"{r.topic}/{r.partition}/{lo}-{hi - 1}")
                tally.messages_lost += hi - lo
                context.log.error(f"{r.topic}/{r.partition}: offsets {lo}..{hi - 1} ({hi - lo} message(s)) were "
                                  "no longer held by the broker (retention, or the broker lost them) and could not "
                                  "be landed; recorded as one lost_before_landing reject")
            bad = len(rows) - rows["landing_error"].null_count - len(lost)
            context.log.info(f"{label}: read {messages} message(s), landed {result.inserted} row(s) "
                             f"({len(rows) - result.inserted} already landed, {bad} unparseable"
                             + (f", {sum(hi - lo for lo, hi in lost)} offset(s) lost" if lost else "") + ")")
