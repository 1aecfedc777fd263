"""The warehouse: where the tables live, behind one Dagster resource.

Three engines, chosen by ``OKR_WAREHOUSE_URL``:
- embedded default, ``duckdb:///<path>`` under ``$OKR_HOME``: columnar, loads a pandas frame with
  one ``INSERT ... SELECT`` (no per-row round trips); one writing process at a time, so runs are
  also serialised per lane by tag concurrency limits in the embedded instance config;
- deployments, ``postgresql://user:password@host:port/db``: bulk loads with ``COPY``, concurrent
  landing made safe by a unique key, ``ON CONFLICT DO NOTHING`` and a per-table write lock;
- organisations that outgrow one server, ``spark:///<folder>`` (a local session),
  ``spark://host:port/<folder>`` or ``sc://host:port/<folder>``: Parquet tables whose writes
  commit by switching a catalog file (``warehouse_spark.py``).

Tables are grouped in schemas by layer (``okr_raw``, ``okr_processed``, ``okr_curated``, plus
``okr_ml`` and ``okr_ops``) with DDL derived from the Pandera models, so the stored shape cannot
drift from the checked shape. Every write that replaces rows (a partition range, a whole table) is
one transaction: delete and load commit together or not at all. Values always travel as query
parameters or through COPY/registered frames, never inside SQL text; identifiers come from the
registry below and are quoted.

pandas and Pandera are imported on first use (a query, ``setup()``), not with this module: the
resource is built whenever the code location loads, which must stay light (README Performance).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from okr_assets.resources.warehouse_backends import Backend, DuckDBBackend, PostgresBackend, quote
from okr_assets.resources.warehouse_spark import SparkBackend

if TYPE_CHECKING:
    import ibis
    import pandas as pd
    import pyarrow as pa


# DuckDB's own default is 80% of the machine's memory, and it keeps what it took: a step's process
# grew with the data. Bounded, DuckDB spills joins, sorts, windows and aggregates to disk.
DEFAULT_DUCKDB_MEMORY_LIMIT = "512MB"


class WarehouseUnavailableError(ConnectionError):
    """The warehouse could not be read in the time a sensor tick allows (locked or down)."""


class _NoLedgerYet(Exception):
    """A landing-ledger table does not exist yet: nothing has landed."""


@dataclass(frozen=True)
class LandResult:
    inserted: int
    # okr_processed partitions whose content may change: those of the new rows, and those of
    # older versions of the same check-ins (which a new valid version supersedes).
    touched_partitions: set[str]
    # rows inserted per landed file (sha256), when files were landed
    inserted_by_file: dict[str, int] = field(default_factory=dict)
    # the rows this call inserted are those of okr_raw with raw_id > after_raw_id
    after_raw_id: int = 0
    # runs that landed rows of this batch before (it skipped them): a run that died after its
    # commit never reported what it landed, so the caller cascades those runs' partitions
    earlier_runs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Table:
    name: str
    schema: str
    key: tuple[str, ...] | None = None  # unique key (idempotent landing)
    catalog: str | None = None  # another database than the warehouse's (Backend.work_catalog)
    # False: the embedded DuckDB does not keep the key's index (see ``land_raw``), a server engine does.
    embedded_key: bool = True
    indexes: tuple[str, ...] = ()
    # The date column a range is replaced by (Spark stores a table's files by it).
    partition_column: str | None = None
    # Indexes of earlier versions that no query uses any more: dropped by setup() where present.
    retired_indexes: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        within = f"{quote(self.catalog)}." if self.catalog else ""
        return f"{within}{quote(self.schema)}.{quote(self.name)}"

    def staged(self, catalog: str | None = None) -> Table:
        """The table's staging twin (same columns, no keys), in the engine's ``work_catalog``:
        new rows are written there, checked, and published into the table in one transaction
        only when the checks pass."""
        return Table(f"{self.name}{STAGED_SUFFIX}", self.schema, catalog=catalog)


TABLES: dict[str, Table] = {
    "okr_raw": Table("okr_raw", "okr_raw", key=("source_key",), embedded_key=False,
                     # checkin_id: every query matches trim(checkin_id), which a plain index
                     # cannot serve; it only cost each landing commit (~0.5 s per million rows).
                     indexes=("partition_date",), retired_indexes=("checkin_id",), partition_column="partition_date"),
    "okr_processed": Table("okr_processed", "okr_processed", indexes=("checkin_date", "cycle_start"),
                           partition_column="checkin_date"),
    "okr_rejects": Table("okr_rejects", "okr_processed", indexes=("partition_date",),
                         partition_column="partition_date"),
    "okr_curated": Table("okr_curated", "okr_curated", indexes=("cycle_quarter",), partition_column="cycle_quarter"),
    "okr_features": Table("okr_features", "okr_ml", indexes=("cycle_quarter",), partition_column="cycle_quarter"),
    "okr_predictions": Table("okr_predictions", "okr_ml"),
    "okr_drift_report": Table("okr_drift_report", "okr_ml"),
    "okr_prediction_log": Table("okr_prediction_log", "okr_ml", indexes=("key_result_id",)),
    "okr_model_performance": Table("okr_model_performance", "okr_ml"),
    # Operational tables (alerts) live apart from the data layers.
    "okr_alerts": Table("okr_alerts", "okr_ops", key=("alert_id",), indexes=("raised_at",)),
}
# The landing ledger: what has landed, written in the transaction that lands the rows, so it is
# exactly as true as okr_raw itself. The sensors compare the sources with it on every tick.
# landed_files: one row per file version read (name, size, mtime) and its content hash; a
# version whose bytes landed before (under any name) is recorded with rows = 0.
# Tables written by write-audit-publish: a step writes a range to the staging twin, its blocking
# checks read it there, and ``publish_staged`` swaps it in.
STAGED_SUFFIX = "_staged"
STAGED_TABLES = ("okr_processed", "okr_rejects", "okr_curated", "okr_features")

LANDED_FILES = Table("landed_files", "okr_raw", key=("file_name", "file_size", "file_mtime_ns", "sha256"),
                     indexes=("sha256",))
LANDED_FILES_COLUMNS: list[tuple[str, str]] = [
    ("sha256", "TEXT"), ("file_name", "TEXT"), ("file_size", "BIGINT"), ("file_mtime_ns", "BIGINT"),
    ("rows", "BIGINT"), ("unreadable", "BOOLEAN"), ("landed_at", "TIMESTAMPTZ"), ("run_id", "TEXT"),
]
# landed_offsets: one row per Kafka offset range landed (or recorded as lost), offsets start..end-1.
LANDED_OFFSETS = Table("landed_offsets", "okr_raw",
                       key=("topic", "epoch", "kafka_partition", "start_offset", "end_offset"),
                       indexes=("end_offset",))
LANDED_OFFSETS_COLUMNS: list[tuple[str, str]] = [
    ("topic", "TEXT"), ("epoch", "BIGINT"), ("kafka_partition", "BIGINT"), ("start_offset", "BIGINT"),
    ("end_offset", "BIGINT"), ("messages", "BIGINT"), ("lost", "BOOLEAN"), ("landed_at", "TIMESTAMPTZ"),
    ("run_id", "TEXT"),
]
LEDGER_COLUMNS = {LANDED_FILES.name: LANDED_FILES_COLUMNS, LANDED_OFFSETS.name: LANDED_OFFSETS_COLUMNS}


@dataclass(frozen=True)
class FileVersion:
    """A landing file as it was read: its name, content hash and the stat of the bytes read."""

    sha256: str
    name: str
    size: int
    mtime_ns: int
    unreadable: bool = False


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``start`` .. ``end - 1`` of one topic partition (incarnation ``epoch``) that a
    landing run read (``lost=False``) or found deleted by the broker (``lost=True``)."""

    topic: str
    epoch: int
    partition: int
    start: int
    end: int
    messages: int = 0
    lost: bool = False


class WarehouseResource(ConfigurableResource):
    """SQL warehouse holding okr_raw, okr_processed, okr_rejects, okr_curated and the ML tables.

    ``url``: ``duckdb:///<path>`` (embedded default under ``$OKR_HOME``) or
    ``postgresql://user:password@host:port/database`` (deployments; schemas created on first use).
    """

    url: str = Field(description="duckdb:///<path> or postgresql://user:password@host:port/db. "
                                 "Set via OKR_WAREHOUSE_URL.")
    lock_timeout_seconds: float = Field(
        default=300.0, description="How long to wait for another run's write lock on the embedded DB.")
    spark_driver_memory: str = Field(
        default="2g", description="Heap of the Spark driver this process starts (spark:// and local Spark "
                                  "warehouses), e.g. 2g. Set via OKR_SPARK_DRIVER_MEMORY.")
    spark_master: str = Field(
        default="", description="Master of the local Spark session of a spark:///<folder> warehouse "
                                "(default local[*], every core; e.g. local[2]). Set via OKR_SPARK_MASTER.")
    duckdb_memory_limit: str = Field(
        default=DEFAULT_DUCKDB_MEMORY_LIMIT,
        description="Memory the embedded DuckDB may use for a statement before it spills to disk (beside the "
                    "database file, <file>.tmp), e.g. 512MB or 2GB. Set via OKR_DUCKDB_MEMORY_LIMIT.")

    # -- connections -------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        return self.backend_waiting(self.lock_timeout_seconds)

    def backend_waiting(self, wait_seconds: float) -> Backend:
        """The engine, waiting at most about ``wait_seconds`` for the embedded file's lock or a
        server connection (a run waits minutes; a sensor tick a second)."""
        if isinstance(self.url, EnvVar):
            # Dagster resolves an EnvVar when it initialises the resource; until then it is only a name.
            raise ValueError(f"the warehouse URL is still the environment variable {self.url.env_var_name}: "
                             "initialise the resource first (a Dagster run does; outside one, use "
                             "okr_assets.resources.open_resources())")
        scheme = self.url.split("://", 1)[0].lower()
        if scheme == "duckdb":
            twins = [(TABLES[n].schema, TABLES[n].staged().name, TABLES[n].name) for n in STAGED_TABLES]
            return DuckDBBackend(Path(self.url.removeprefix("duckdb:///")), wait_seconds, self.duckdb_memory_limit,
                                 work_twins=twins)
        if scheme in {"postgresql", "postgres", "postgresql+psycopg2"}:
            return PostgresBackend(self.url, connect_timeout_seconds=max(1, min(10, round(wait_seconds))))
        if scheme in {"spark", "sc"}:
            return SparkBackend(self.url, [*TABLES.values(), LANDED_FILES, LANDED_OFFSETS], wait_seconds,
                                driver_memory=self.spark_driver_memory, master_override=self.spark_master)
        raise ValueError(f"unsupported warehouse URL scheme {scheme!r}://...: use duckdb:///<path>, "
                         "postgresql://user:password@host:port/database or spark:///<folder>")

    @contextmanager
    def held_open(self) -> Iterator[None]:
        """Keep an embedded database open across the operations inside (cheaper commits)."""
        with self.backend.held_open():
            yield

    @contextmanager
    def exclusive(self, name: str, on_wait: Callable[[str], None] = lambda _: None) -> Iterator[None]:
        """Only one block named ``name`` at a time, across runs and processes (waiting for the one
        inside). A refresh holds it from its first read to its last commit, so refreshes of the
        same table apply in the order they start: one that read older landed rows can never commit
        after one that read newer ones, whichever lane or run each belongs to."""
        with self.backend.exclusive(name, on_wait):
            yield

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        backend = self.backend
        with backend.connect() as con:
            backend.execute(con, "BEGIN")
            try:
                yield con
                backend.execute(con, "COMMIT")
            except BaseException as exc:
                # If the connection itself is gone, the server has rolled back for us.
                with suppress(Exception):
                    backend.execute(con, "ROLLBACK")
                lost = backend.lost_connection(exc)
                if lost:
                    raise ConnectionError(lost) from exc
                raise

    # -- schema --------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create schemas, tables and indexes if missing (idempotent); migrate a ``landed_files``
        table of the content-hash-only shape to the file-version ledger."""
        backend = self.backend
        if not backend.sql_catalog:
            specs = [(t, LEDGER_COLUMNS.get(t.name) or _sql_columns(t.name))
                     for t in (*TABLES.values(), LANDED_FILES, LANDED_OFFSETS)]
            with self.transaction() as con:
                backend.create_tables(con, specs)
            return
        with backend.connect() as con:
            staged = [TABLES[name].staged() for name in STAGED_TABLES]
            if backend.work_catalog:  # twins belong in the work catalog (``_prepare_work``): one in the file is dropped
                for twin in staged:
                    backend.execute(con, f"DROP TABLE IF EXISTS {twin.qualified}")
                staged = []
            for table in (*TABLES.values(), LANDED_FILES, LANDED_OFFSETS, *staged):
                backend.execute(con, f"CREATE SCHEMA IF NOT EXISTS {quote(table.schema)}")
                if table is LANDED_FILES:
                    _migrate_landed_files(backend, con)
                columns = LEDGER_COLUMNS.get(table.name) or _sql_columns(table.name.removesuffix(STAGED_SUFFIX))
                ddl = ", ".join(f"{quote(c)} {t}" for c, t in columns)
                if table.key and (table.embedded_key or not backend.embedded):
                    ddl += f", PRIMARY KEY ({', '.join(quote(k) for k in table.key)})"
                backend.execute(con, f"CREATE TABLE IF NOT EXISTS {table.qualified} ({ddl})")
                # Secondary indexes serve the server engine's range reads; the embedded DuckDB keeps
                # none: its per-row-group min/max zone maps already skip what a date range excludes,
                # while an ART index is held in memory and maintained on every insert and delete
                # (a third of publishing a million rows).
                for col in table.indexes if not backend.embedded else ():
                    backend.execute(con, f"CREATE INDEX IF NOT EXISTS {quote(f'{table.name}_{col}_idx')} "
                                         f"ON {table.qualified} ({quote(col)})")
                for col in (*table.retired_indexes, *(table.indexes if backend.embedded else ())):
                    retired = f"{quote(table.schema)}.{quote(f'{table.name}_{col}_idx')}"
                    backend.execute(con, f"DROP INDEX IF EXISTS {retired}")

    def columns(self, table: str) -> list[str]:
        return [c for c, _ in _sql_columns(_table(table).name)]

    # -- reads ---------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = (), text_storage: str = "python") -> pd.DataFrame:
        """Run a parameterised query (``?`` placeholders) and return a DataFrame. Text comes as
        pandas ``string``; ``text_storage="pyarrow"`` lets an engine that can (DuckDB) keep it in
        Arrow memory, for callers that only run vectorised string operations on it."""
        backend = self.backend
        with backend.connect() as con:
            return _normalise(backend.fetch(con, sql, params, text_storage))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one parameterised statement (``?`` placeholders) in its own transaction."""
        backend = self.backend
        with backend.connect() as con:
            backend.execute(con, sql, params)

    def read_range(self, table: str, column: str, start: dt.date, end: dt.date,
                   text_storage: str = "python", staged: bool = False) -> pd.DataFrame:
        """Rows of ``table`` (its staging twin when ``staged``) with ``start <= column < end``
        (``text_storage``: as for ``query``)."""
        t = _table(table)
        col = _column(t, column)
        if not staged:
            return self.query(f"SELECT * FROM {t.qualified} WHERE {col} >= ? AND {col} < ? ORDER BY 1",
                              [start, end], text_storage)
        backend = self.backend
        with backend.connect() as con:
            source = _prepare_work(backend, con, [table])[0]
            return backend.fetch(con, f"SELECT * FROM {source.qualified} WHERE {col} >= ? AND {col} < ? ORDER BY 1",
                                 [start, end], text_storage)

    def span(self, table: str, column: str) -> tuple[dt.date, dt.date]:
        """``(first, last + 1 day)`` of a date column: the range that covers every row (an empty
        range when the table is empty)."""
        import pandas as pd

        t = _table(table)
        col = _column(t, column)
        row = self.query(f"SELECT min({col}) AS lo, max({col}) AS hi FROM {t.qualified}").iloc[0]
        if pd.isna(row["lo"]):
            today = dt.datetime.now(dt.UTC).date()
            return today, today
        return pd.Timestamp(row["lo"]).date(), pd.Timestamp(row["hi"]).date() + dt.timedelta(days=1)

    def count(self, table: str, staged: bool = False) -> int:
        if not staged:
            return int(self.query(f"SELECT count(*) AS n FROM {_table(table).qualified}").iloc[0, 0])
        backend = self.backend
        with backend.connect() as con:
            twin = _prepare_work(backend, con, [table])[0]
            return int(backend.fetch(con, f"SELECT count(*) AS n FROM {twin.qualified}").iloc[0, 0])

    def landed_file_digests(self, digests: Sequence[str]) -> dict[str, tuple[bool, str | None]]:
        """The file hashes among ``digests`` whose bytes already landed, each with whether that
        file was unreadable and the run that landed its rows (one query for a whole batch)."""
        if not digests:
            return {}
        import pandas as pd

        backend = self.backend
        with self.transaction() as con:  # PostgreSQL drops the staged table at commit
            backend.stage(con, "okr_digests", pd.DataFrame({"sha256": list(digests)}), [("sha256", "TEXT")])
            found = backend.fetch(con, "SELECT sha256, bool_or(unreadable) AS unreadable, max(run_id) FILTER "
                                       f"(WHERE {quote('rows')} > 0) AS run_id FROM {LANDED_FILES.qualified} "
                                       "WHERE sha256 IN (SELECT sha256 FROM okr_digests) GROUP BY 1")
            backend.unstage(con, "okr_digests")
        return {str(sha): (bool(bad), None if run is None or pd.isna(run) else str(run))
                for sha, bad, run in zip(found["sha256"], found["unreadable"], found["run_id"], strict=True)}

    def partitions_landed_by(self, run_ids: Sequence[str]) -> set[str]:
        """okr_processed partitions of the okr_raw rows these runs landed."""
        if not run_ids:
            return set()
        marks = ", ".join("?" for _ in run_ids)
        found = self.query(f"SELECT DISTINCT partition_date FROM {TABLES['okr_raw'].qualified} "
                           f"WHERE run_id IN ({marks})", list(run_ids))
        return {_day(d) for d in found["partition_date"].dropna()}

    # -- the landing ledger, as the sensors read it: quickly, or not at all -------------------------

    def landed_file_versions(self, names: Sequence[str], wait_seconds: float = 1.0) -> dict[str, dict[str, bool]]:
        """For each of ``names``: the versions (``"mtime_ns:size"``) recorded as read, each with
        whether the file was unreadable. Raises ``WarehouseUnavailableError`` when the warehouse
        cannot be read within about ``wait_seconds`` (a sensor tick must stay short)."""
        if not names:
            return {}
        import pandas as pd

        versions: dict[str, dict[str, bool]] = {}
        try:
            with self._quick(wait_seconds) as (backend, con):
                backend.execute(con, "BEGIN")
                backend.stage(con, "okr_names", pd.DataFrame({"file_name": list(names)}), [("file_name", "TEXT")])
                found = backend.fetch(con, f"SELECT file_name, file_mtime_ns, file_size, bool_or(unreadable) AS bad "
                                           f"FROM {LANDED_FILES.qualified} WHERE file_name IN "
                                           "(SELECT file_name FROM okr_names) GROUP BY 1, 2, 3")
                backend.execute(con, "ROLLBACK")
        except _NoLedgerYet:
            return {}
        for name, mtime, size, bad in zip(found["file_name"], found["file_mtime_ns"], found["file_size"],
                                          found["bad"], strict=True):
            versions.setdefault(str(name), {})[f"{int(mtime)}:{int(size)}"] = bool(bad)
        return versions

    def landed_offset_ranges(self, topic: str, epoch: int, after: dict[int, int],
                             wait_seconds: float = 1.0) -> dict[int, list[tuple[int, int]]]:
        """Offset ranges of ``topic`` (incarnation ``epoch``) recorded as landed or lost, per
        partition, that end after ``after[partition]`` (everything below is known to be landed).
        Raises ``WarehouseUnavailableError`` like ``landed_file_versions``."""
        if not after:
            return {}
        t = LANDED_OFFSETS.qualified
        ranges: dict[int, list[tuple[int, int]]] = {p: [] for p in after}
        try:
            with self._quick(wait_seconds) as (backend, con):
                found = backend.fetch(con, f"SELECT kafka_partition, start_offset, end_offset FROM {t} "
                                           "WHERE topic = ? AND epoch = ? AND end_offset > ? ORDER BY 1, 2",
                                      [topic, epoch, min(after.values())])
        except _NoLedgerYet:
            return ranges
        for p, lo, hi in zip(found["kafka_partition"], found["start_offset"], found["end_offset"], strict=True):
            if int(p) in ranges and int(hi) > after[int(p)]:
                ranges[int(p)].append((int(lo), int(hi)))
        return ranges

    @contextmanager
    def _quick(self, wait_seconds: float) -> Iterator[tuple[Backend, Any]]:
        """A connection for a short read: gives up after about ``wait_seconds`` when the embedded
        file is locked by a run or the server is down, instead of the run-sized waits. A ledger
        table that does not exist yet (a fresh warehouse) raises ``_NoLedgerYet``."""
        backend = self.backend_waiting(wait_seconds)
        try:
            with backend.connect() as con:
                yield backend, con
        except _NoLedgerYet:
            raise
        except Exception as exc:
            if backend.missing_table(exc):
                raise _NoLedgerYet from exc
            raise WarehouseUnavailableError(f"the warehouse cannot be read right now: {exc}") from exc

    # -- writes --------------------------------------------------------------------------------

    def land_raw(self, rows: pd.DataFrame | pa.Table, first_partition: dt.date, run_id: str = "",
                 files: Sequence[FileVersion] = (), offsets: Sequence[OffsetRange] = (),
                 audit: Callable[[LandResult, Callable[..., pd.DataFrame]], None] | None = None,
                 ) -> LandResult:
        """Append rows to okr_raw, skipping any whose ``source_key`` already landed, and record
        the ``files`` and Kafka ``offsets`` they come from in the landing ledger, in one
        transaction: the ledger says a file version or an offset landed exactly when its rows did.

        ``partition_date`` is decided by the engine as the rows are inserted
        (``okr_assets.lib.validation.routed``, from each row's ``checkin_at`` and ``ingested_at``
        and ``first_partition``): a ``partition_date`` in ``rows`` is not used.
        ``raw_id`` is assigned in row order after the current maximum, inside the write
        transaction (which holds the table's write lock), so it orders versions of a check-in by
        ingestion even when two landing runs commit at the same time. A row is skipped by an
        anti-join on ``source_key`` under that lock, not by a unique index: the embedded DuckDB
        keeps none on okr_raw (an ART index lives in memory and cost ~1 s per 100,000 landed
        rows), and the same statement runs where there is one (PostgreSQL). ``audit`` is called
        before the commit with the result and a ``fetch`` that runs an Ibis expression inside this
        transaction (the new rows: ``raw_id > result.after_raw_id``); if it raises, nothing of
        this call is kept (write, audit, then publish).

        The partitions touched and the rows per file are counted by the database over the new rows.
        """
        import ibis
        import numpy as np
        import pyarrow as pa

        from okr_assets.lib.validation import routed

        t = TABLES["okr_raw"]
        types = [(c, sql) for c, sql in _sql_columns("okr_raw") if c != "raw_id"]
        cols = [c for c, _ in types]
        given = [(c, sql) for c, sql in types if c != "partition_date"]
        frame = landing_table([rows])
        frame = frame.append_column("_rn", pa.array(np.arange(1, len(frame) + 1, dtype=np.int64)))
        collist = ", ".join(quote(c) for c in cols)
        incoming = ibis.table({**{c: _IBIS_TYPES[sql] for c, sql in given}, "_rn": "int64"}, name="okr_incoming")
        routed_rows = self.compile(routed(incoming, first_partition).select(*cols, "_rn"))
        backend = self.backend
        with self.transaction() as con:
            backend.lock_exclusive_writes(con, t.qualified)
            before = int(backend.fetch(con, f"SELECT coalesce(max(raw_id), 0) AS n FROM {t.qualified}")["n"].iloc[0])
            backend.stage(con, "okr_incoming", frame, [*given, ("_rn", "BIGINT")], keys=["source_key"])
            # raw_id comes from each row's position (_rn), so no ORDER BY: sorting every column of
            # the batch cost DuckDB ~0.6 s per million rows, for a physical order nothing reads.
            # The keys already landed are found first, by a semi-join that hashes the batch and
            # streams okr_raw past it (usually none): with an anti-join of the batch against the
            # whole table DuckDB hashes okr_raw's keys instead, its memory growing with the table.
            backend.insert_select(
                con, t, [*cols, "raw_id"],
                f"WITH landed AS {backend.cte_materialized}(SELECT source_key FROM {t.qualified} WHERE source_key IN "
                f"(SELECT source_key FROM okr_incoming)) "
                f"SELECT {collist}, ? + _rn AS raw_id FROM ({routed_rows}) i "
                f"WHERE NOT EXISTS (SELECT 1 FROM landed r WHERE r.source_key = i.source_key)", [before])
            inserted = int(backend.fetch(con, f"SELECT count(*) AS n FROM {t.qualified} WHERE raw_id > ?",
                                         [before])["n"].iloc[0])
            backend.analyze(con, t.qualified, grown_by=inserted)  # the statements below and the next step plan on it
            earlier: frozenset[str] = frozenset()
            if inserted < len(frame):  # some rows were there already: who landed them?
                runs = backend.fetch(con, f"SELECT DISTINCT r.run_id FROM {t.qualified} r JOIN okr_incoming i "
                                          "ON r.source_key = i.source_key WHERE r.raw_id <= ?", [before])
                earlier = frozenset(str(r) for r in runs["run_id"].dropna())
            backend.unstage(con, "okr_incoming")
            # Partitions of the new rows, and of older versions of the same check-ins (which may change too).
            # A join, not ``... OR trim(checkin_id) IN (subquery)``: PostgreSQL runs that IN as a
            # rescan per row once the batch's ids outgrow work_mem (minutes for 200,000 rows).
            touched = backend.fetch(
                con,
                f"SELECT partition_date FROM {t.qualified} WHERE raw_id > ? UNION "
                f"SELECT r.partition_date FROM {t.qualified} r JOIN (SELECT DISTINCT trim(checkin_id) AS k "
                f"FROM {t.qualified} WHERE raw_id > ? AND checkin_id IS NOT NULL) n ON trim(r.checkin_id) = n.k",
                [before, before])
            by_file: dict[str, int] = {}
            if files:  # rows per file counted by the database; one statement for all the files
                counted = backend.fetch(
                    con, f"SELECT split_part(source_key, ':', 2) AS sha256, count(*) AS n FROM {t.qualified} "
                         "WHERE raw_id > ? GROUP BY 1", [before])
                by_file = {str(k): int(n) for k, n in zip(counted["sha256"], counted["n"], strict=True)}
            _record_ledger(backend, con, files, offsets, by_file, run_id)
            result = LandResult(inserted=inserted,
                                touched_partitions={_day(d) for d in touched["partition_date"].dropna()},
                                inserted_by_file={f.sha256: by_file.get(f.sha256, 0) for f in files},
                                after_raw_id=before, earlier_runs=earlier)
            if audit is not None:
                audit(result, lambda expr, inputs=None: _normalise(backend.fetch(con, self.compile(expr, inputs))))
        return result

    def record_file_versions(self, files: Sequence[FileVersion], run_id: str) -> None:
        """Record file versions whose bytes had landed before (under this or another name): the
        ledger then says this version was read, so the landing sensor does not ask for it again."""
        if files:
            with self.transaction() as con:
                _record_ledger(self.backend, con, files, (), {}, run_id)

    def append(self, table: str, frame: pd.DataFrame) -> None:
        with self.transaction() as con:
            self.backend.load(con, _table(table).qualified, self.columns(table), frame)

    def append_new(self, table: str, frame: pd.DataFrame) -> int:
        """Append the rows whose unique key is not in ``table`` yet; returns how many were new.
        Safe under concurrent writers (unique key + ``ON CONFLICT DO NOTHING``)."""
        t = _table(table)
        types = _sql_columns(table)
        collist = ", ".join(quote(c) for c, _ in types)
        backend = self.backend
        with self.transaction() as con:
            backend.lock_exclusive_writes(con, t.qualified)  # the count below is then this call's rows
            before = self._count_on(con, t)
            backend.stage(con, "okr_incoming", frame, types)
            backend.insert_select(con, t, [c for c, _ in types], f"SELECT {collist} FROM okr_incoming",
                                  skip_existing=True)
            backend.unstage(con, "okr_incoming")
            return self._count_on(con, t) - before

    def _count_on(self, con: Any, table: Table) -> int:
        return int(self.backend.fetch(con, f"SELECT count(*) AS n FROM {table.qualified}")["n"].iloc[0])

    def replace_table(self, table: str, frame: pd.DataFrame) -> None:
        """Replace every row of an unpartitioned table, in one transaction."""
        backend = self.backend
        qualified = _table(table).qualified
        with self.transaction() as con:
            # Writers of the table take turns (readers do not wait): two replacements at once would
            # each delete only the rows committed before them, and both loads would stay.
            backend.lock_exclusive_writes(con, qualified)
            backend.replace_all(con, _table(table), self.columns(table), frame)

    # -- write, audit, publish --------------------------------------------------------------------
    # A step writes the new rows of a range to the tables' staging twins (a chunk of transactions,
    # so memory stays bounded), its blocking checks read them there, and only when they pass does
    # ``publish_staged`` replace the range in one transaction: rows that fail a blocking check are
    # never visible in the table. The caller holds ``exclusive(table)`` throughout, so a staging
    # twin has one writer at a time.

    def clear_staged(self, tables: Sequence[str]) -> None:
        """Empty the staging twins of ``tables`` (what a failed or abandoned step left there)."""
        backend = self.backend
        with self.transaction() as con:
            for twin in _prepare_work(backend, con, tables):
                backend.clear(con, twin)

    # -- transforms in the engine ----------------------------------------------------------------
    # A transform is an Ibis expression over ``table(...)``: unbound tables with the warehouse's
    # own names and column types. The warehouse compiles it to its engine's SQL dialect and runs
    # it on its own connection, so the rows never leave the engine and the statement takes part
    # in the warehouse's transactions and locks like any other.

    def table(self, name: str, staged: bool = False) -> ibis.Table:
        """The table ``name`` (or its staging twin) as an Ibis table to build transforms on."""
        import ibis

        t = _staged_table(name, self.backend) if staged else _table(name)
        schema = {column: _IBIS_TYPES[sql] for column, sql in _sql_columns(name)}
        return ibis.table(schema, name=t.name, catalog=t.catalog, database=t.schema)

    def compile(self, expr: ibis.Expr, inputs: Mapping[str, ibis.Table] | None = None) -> str:
        """The expression as SQL in the engine's dialect, with the engine's own adjustments
        (``Backend.adjust``: the one place for engine-specific SQL). ``inputs``: expressions bound
        to the unbound tables of those names in ``expr`` (as common table expressions), so a
        large expression that does not change between runs is compiled once per process."""
        backend = self.backend
        sql = _compiled(backend, expr.op())
        if not inputs:
            return sql
        bound = ", ".join(f"{quote(name)} AS ({_compiled(backend, table.op())})" for name, table in inputs.items())
        # Ibis starts a query with WITH when it has common table expressions of its own.
        return f"WITH {bound}, {sql[5:]}" if sql.startswith("WITH ") else f"WITH {bound} {sql}"

    def fetch(self, expr: ibis.Expr, inputs: Mapping[str, ibis.Table] | None = None) -> pd.DataFrame:
        """The rows of a (small) expression's result: aggregates, metadata previews (``inputs``:
        as for ``compile``)."""
        return self.query(self.compile(expr, inputs))

    def insert_staged(self, name: str, expr: ibis.Table, inputs: Mapping[str, ibis.Table] | None = None) -> None:
        """Append the rows of ``expr`` (the table's columns, in any order) to the staging twin of
        ``name``, in one ``INSERT ... SELECT`` that the engine runs where the data is (``inputs``:
        as for ``compile``)."""
        # Compiled SQL carries its values as literals; the placeholder translation of execute
        # leaves quoted literals alone.
        backend = self.backend
        columns = self.columns(name)
        collist = ", ".join(quote(c) for c in columns)
        select = self.compile(expr.select(*columns), inputs)
        with self.transaction() as con:
            twin = _prepare_work(backend, con, [name])[0]
            backend.execute(con, f"INSERT INTO {twin.qualified} ({collist}) {select}")
            backend.analyze(con, twin.qualified)  # the checks query it next

    @contextmanager
    def scratch(self, name: str, of: str, expr: ibis.Table, inputs: Mapping[str, ibis.Table] | None = None
                ) -> Iterator[ibis.Table]:
        """The rows of ``expr`` computed once, into a table ``<name>_scratch`` beside table
        ``of``, for several statements to read (e.g. the verdicts on a range, which the staged
        rows and the counts both come from): the engine evaluates, and Ibis compiles, the
        expression once instead of once per statement. Dropped when the block ends; a run that
        died inside leaves it for the next one to replace. The caller holds the lock of ``of``.
        ``inputs``: as for ``compile``."""
        import ibis

        if not name.isidentifier():
            raise ValueError(f"scratch table name {name!r} is not an identifier")
        backend = self.backend
        t = Table(f"{name}_scratch", _table(of).schema, catalog=backend.work_catalog)
        select = self.compile(expr, inputs)
        with backend.held_open():  # an in-memory work catalog lasts while the file is open
            with self.transaction() as con:
                _prepare_work(backend, con, [])
                backend.create_as(con, t, select)
                backend.analyze(con, t.qualified)
            try:
                yield ibis.table(expr.schema(), name=t.name, catalog=t.catalog, database=t.schema)
            finally:
                with suppress(Exception):  # a lost connection: the next run replaces it
                    self.execute(f"DROP TABLE IF EXISTS {t.qualified}")

    def publish_staged(self, start: dt.date, end: dt.date, targets: Sequence[tuple[str, str]]) -> None:
        """For each (table, column): replace the table's rows with ``start <= column < end`` by
        its staged rows of that range, all tables in one transaction; then empty the staging
        twins (a twin left full by a failure there is emptied by the next ``clear_staged``)."""
        backend = self.backend
        with self.transaction() as con:
            for name, _ in targets:  # writers of a table take turns, as in replace_table
                backend.lock_exclusive_writes(con, _table(name).qualified)
            for name, column in targets:
                t, col = _table(name), _column(_table(name), column)
                columns = self.columns(name)
                collist = ", ".join(quote(c) for c in columns)
                backend.replace_range(con, t, column, start, end, columns,
                                      f"SELECT {collist} FROM {_staged_table(name, backend).qualified} "
                                      f"WHERE {col} >= ? AND {col} < ?", [start, end])
                backend.analyze(con, t.qualified)  # the next step's transforms read it
        # Apart from the publish: a DuckDB transaction writes to one database, and the twins are
        # in the work catalog.
        self.clear_staged([name for name, _ in targets])


def _compiled(backend: Backend, node: Any) -> str:
    """SQL of an Ibis expression (by its node: nodes compare by structure, expressions do not)
    for ``backend``'s engine."""
    return _compiled_for(backend.ibis_dialect, type(backend).adjust, node)


@functools.lru_cache(maxsize=64)
def _compiled_for(dialect: str, adjust: Callable[[str], str], node: Any) -> str:
    # Cached: compiling the validation takes Ibis about a second.
    import ibis

    return adjust(ibis.to_sql(node.to_expr(), dialect=dialect))


def _staged_table(name: str, backend: Backend) -> Table:
    if name not in STAGED_TABLES:
        raise ValueError(f"{name} is not written through staging; staged tables: {', '.join(STAGED_TABLES)}")
    return _table(name).staged(backend.work_catalog)


def _prepare_work(backend: Backend, con: Any, names: Sequence[str]) -> list[Table]:
    """The staging twins of ``names``, where the engine keeps them (``Backend.prepare_work``)."""
    backend.prepare_work(con)
    return [_staged_table(name, backend) for name in names]


def _record_ledger(backend: Backend, con: Any, files: Sequence[FileVersion], offsets: Sequence[OffsetRange],
                   rows_by_file: dict[str, int], run_id: str) -> None:
    """Insert the landing-ledger rows of one landing transaction (a re-landed version or range
    adds nothing: the ledger's keys and ``ON CONFLICT DO NOTHING``)."""
    import pandas as pd

    for table, columns, frame in (
        (LANDED_FILES, LANDED_FILES_COLUMNS, pd.DataFrame({
            "sha256": [f.sha256 for f in files], "file_name": [f.name for f in files],
            "file_size": [f.size for f in files], "file_mtime_ns": [f.mtime_ns for f in files],
            "rows": [rows_by_file.get(f.sha256, 0) for f in files], "unreadable": [f.unreadable for f in files]})),
        (LANDED_OFFSETS, LANDED_OFFSETS_COLUMNS, pd.DataFrame({
            "topic": [o.topic for o in offsets], "epoch": [o.epoch for o in offsets],
            "kafka_partition": [o.partition for o in offsets], "start_offset": [o.start for o in offsets],
            "end_offset": [o.end for o in offsets], "messages": [o.messages for o in offsets],
            "lost": [o.lost for o in offsets]})),
    ):
        if frame.empty:
            continue
        staged = [(c, t) for c, t in columns if c in frame.columns]
        names = ", ".join(quote(c) for c, _ in staged)
        backend.stage(con, "okr_ledger", frame, staged)
        backend.insert_select(con, table, [*(c for c, _ in staged), "landed_at", "run_id"],
                              f"SELECT {names}, now() AS landed_at, ? AS run_id FROM okr_ledger", [run_id],
                              skip_existing=True)
        backend.unstage(con, "okr_ledger")


def _migrate_landed_files(backend: Backend, con: Any) -> None:
    """Warehouses created before the file-version ledger have ``landed_files(sha256, file_name,
    rows, landed_at, run_id)`` keyed by hash alone; move its rows into the ledger's shape (their
    size and mtime unknown: -1), in one transaction."""
    found = backend.fetch(con, "SELECT column_name FROM information_schema.columns "
                               "WHERE table_schema = ? AND table_name = ?", [LANDED_FILES.schema, LANDED_FILES.name])
    names = set(found["column_name"].astype(str))
    if not names or "file_size" in names:
        return
    new = f"{quote(LANDED_FILES.schema)}.{quote('landed_files_versions')}"
    ddl = ", ".join(f"{quote(c)} {t}" for c, t in LANDED_FILES_COLUMNS)
    key = ", ".join(quote(k) for k in LANDED_FILES.key or ())
    backend.execute(con, "BEGIN")
    try:
        # Built under another name and renamed: the old table's key index keeps its name until
        # the old table is dropped.
        backend.execute(con, f"CREATE TABLE {new} ({ddl}, PRIMARY KEY ({key}))")
        backend.execute(con, f"INSERT INTO {new} SELECT sha256, file_name, -1, -1, {quote('rows')}, false, "
                             f"landed_at, run_id FROM {LANDED_FILES.qualified}")
        backend.execute(con, f"DROP TABLE {LANDED_FILES.qualified}")
        backend.execute(con, f"ALTER TABLE {new} RENAME TO {quote(LANDED_FILES.name)}")
        backend.execute(con, "COMMIT")
    except BaseException:
        with suppress(Exception):
            backend.execute(con, "ROLLBACK")
        raise


def _table(name: str) -> Table:
    """The registered table called ``name``. Only these names ever reach SQL: anything else (a
    typo, or a name smuggled in through config) is refused before a statement is built."""
    if name not in TABLES:
        raise ValueError(f"unknown warehouse table {name!r}; known tables: {', '.join(sorted(TABLES))}")
    return TABLES[name]


def _sql_columns(table: str) -> list[tuple[str, str]]:
    """(column, SQL type) pairs of a table, from its Pandera model: the model is the DDL. Pandera
    is imported here, when a table is first used, rather than when the code location loads."""
    from okr_assets.lib.schemas import TABLE_MODELS, sql_columns

    return sql_columns(TABLE_MODELS[table])


# The models' SQL types (okr_assets.lib.schemas.sql_columns) as Ibis types; timestamps are UTC.
_IBIS_TYPES = {"TEXT": "string", "BIGINT": "int64", "DOUBLE PRECISION": "float64", "BOOLEAN": "boolean",
               "DATE": "date", "TIMESTAMPTZ": "timestamp('UTC')"}


def _column(table: Table, name: str) -> str:
    """A quoted column of a registered table; refuses names that are not in its schema."""
    from okr_assets.lib.schemas import TABLE_MODELS

    if table.name in TABLE_MODELS and name not in {c for c, _ in _sql_columns(table.name)}:
        raise ValueError(f"{name!r} is not a column of {table.name}")
    return quote(name)


def landing_table(pieces: Sequence[pd.DataFrame | pa.Table]) -> pa.Table:
    """Rows to land in okr_raw (DataFrames or Arrow tables, as landing builds them) as one Arrow
    table with the columns ``land_raw`` inserts, typed as okr_raw types them (a missing column is
    all null). DuckDB scans Arrow memory without holding the GIL, where a frame of Python strings
    holds it for every value."""
    import ibis
    import pyarrow as pa

    from okr_assets.lib.landing import as_table

    schema = ibis.schema({c: _IBIS_TYPES[sql] for c, sql in _sql_columns("okr_raw")
                          if c not in {"raw_id", "partition_date"}}).to_pyarrow()
    tables = []
    for piece in pieces:
        table = as_table(piece)
        n = table.num_rows
        tables.append(pa.table([table.column(f.name).cast(f.type) if f.name in table.column_names
                                else pa.nulls(n, f.type) for f in schema], schema=schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _day(value: object) -> str:
    import pandas as pd

    return pd.Timestamp(value).strftime("%Y-%m-%d")


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Make result types match the Pandera models (text as ``string``) on both engines."""
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype("string")
    return frame
