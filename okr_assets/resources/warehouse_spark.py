"""The Spark engine behind the warehouse: ``spark:///<folder>``, ``spark://host:port/<folder>``,
``sc://host:port/<folder>``.

Everything Spark-specific lives here. ``warehouse.py`` says what happens to the tables (land,
replace a range, read) through the backend methods; this backend does it with Spark SQL over
Parquet, compiled by Ibis's ``pyspark`` dialect like the other engines' transforms.

**Storage.** Each table is Parquet under ``<folder>/<schema>/<table>/``, partitioned by its
partition column (``Table.partition_column``), and a file is never changed once written. Which
files make up the tables is one JSON document, the *catalog* (``<folder>/_okr_catalog.json``):
per table its columns and the directory of each partition (of the whole table when unpartitioned).
Every session registers the tables in Spark's catalog from it (external Parquet tables with one
location per partition), so queries prune partitions as usual.

**Atomicity.** A write puts new directories beside the old ones (an append to a partition
hard-links the partition's existing files into its new directory, or copies them where the
filesystem has no hard links), and the transaction commits by replacing the catalog file in one
rename. So every table a transaction changes switches at once: a range of okr_processed and
okr_rejects together, okr_raw's new rows together with their landing-ledger entries. A failure
at any point before the rename leaves every reader on the previous rows; the new directories
are unreferenced and deleted later. Writers take turns under a lock file beside the catalog
(``fcntl.flock``); readers never wait. Directories no catalog references are deleted at a later
commit once ``RETAIN_SECONDS`` old, so a query that planned on the previous catalog can finish.
This needs a filesystem with an atomic rename and working ``flock`` shared by every process
that writes (a local disk, or the same POSIX mount on every node): object stores have neither.
Delta Lake or Iceberg would give the same guarantee as a table format, but their Spark jars are
not on PyPI, where this project installs from.

Spark and its JVM are imported and started only when a warehouse URL asks for them: one
session per process, shared by every warehouse resource of that process.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from okr_assets.resources.warehouse_backends import _with_columns, arrow_to_frame, quote

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

CATALOG_FILE = "_okr_catalog.json"
# A directory the catalog no longer references is deleted this long after it was last written,
# at a later commit: long enough for a query planned on the previous catalog to finish reading.
RETAIN_SECONDS = 3600.0
# The models' SQL types (okr_assets.lib.schemas.sql_columns) in Spark SQL.
SPARK_TYPES = {"TEXT": "STRING", "BIGINT": "BIGINT", "DOUBLE PRECISION": "DOUBLE", "BOOLEAN": "BOOLEAN",
               "DATE": "DATE", "TIMESTAMPTZ": "TIMESTAMP", "TIMESTAMP": "TIMESTAMP_NTZ"}
_PARTITION_DIR = re.compile(r"(?P<column>[a-z_][a-z0-9_]*)=(?P<value>[0-9]{4}-[0-9]{2}-[0-9]{2})")


def parse_url(url: str) -> tuple[str | None, str | None, Path]:
    """``(master, remote, folder)`` of a Spark warehouse URL: ``spark:///<folder>`` runs a local
    session (master ``None``: ``local[*]`` unless configured); ``spark://host:port/<folder>`` a
    standalone cluster's master; ``sc://host:port/<folder>`` Spark Connect."""
    parts = urlsplit(url)
    folder = Path(parts.path or "/").expanduser()
    if str(folder) in {"", "/"}:
        raise ValueError(f"{url!r} names no warehouse folder: use spark:///<folder>, spark://host:port/<folder> "
                         "or sc://host:port/<folder> (a folder every Spark node and every run can reach)")
    if parts.scheme == "sc":
        return None, f"sc://{parts.netloc}", folder
    return (f"spark://{parts.netloc}" if parts.netloc else None), None, folder


# -- the session -------------------------------------------------------------------------------------

_SESSION_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str | None, str | None], Any] = {}


def session(master: str | None, remote: str | None, conf: dict[str, str]) -> Any:
    """The process's Spark session for this master (created on first use, with ``conf``), with
    Ibis's Spark SQL compiler prepared. Fails with what to install when Java is missing."""
    key = (master, remote)
    with _SESSION_LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        if remote is None and shutil.which("java") is None:
            raise RuntimeError("the Spark warehouse needs Java 17 on PATH: `make system-deps` installs Debian's "
                               "openjdk-17-jre-headless (or install a JRE 17 and put its bin/ on PATH)")
        import ibis
        from pyspark.sql import SparkSession

        # Python workers, where Spark needs one, run this interpreter rather than python3 from PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.appName("okr-assets")
        builder = builder.remote(remote) if remote else builder.master(master or "local[*]")
        for name, value in conf.items():
            builder = builder.config(name, value)
        spark = builder.getOrCreate()
        if remote is None:
            spark.sparkContext.setLogLevel("ERROR")
        ibis.pyspark.connect(spark)  # Ibis's pyspark compiler reads options the connection sets
        _SESSIONS[key] = spark
        return spark


def session_conf(master: str | None, driver_memory: str) -> dict[str, str]:
    """The settings every session gets, and why."""
    cores = os.cpu_count() or 2
    return {
        # Tables are registered from the catalog file by each session; nothing is kept in a metastore.
        "spark.sql.catalogImplementation": "in-memory",
        # Managed tables are never created (every table has a location); this keeps Spark's
        # default spark-warehouse/ folder out of the working directory.
        "spark.sql.warehouse.dir": tempfile.gettempdir() + f"/okr-spark-{os.getpid()}",
        "spark.sql.session.timeZone": "UTC",
        # The SQL of warehouse.py quotes identifiers the standard way, as DuckDB and PostgreSQL read it.
        "spark.sql.ansi.doubleQuotedIdentifiers": "true",
        # pandas/Arrow to the JVM and back as Arrow batches, not rows pickled through Python workers.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Spark's default of 200 shuffle partitions makes each join and window of a daily range
        # hundreds of tiny tasks; a few per core keeps every core busy on a cluster too.
        "spark.sql.shuffle.partitions": str(2 * cores if master is None else 200),
        "spark.driver.memory": driver_memory,
        "spark.ui.showConsoleProgress": "false",
        **extra_conf(),
    }


def extra_conf() -> dict[str, str]:
    """``OKR_SPARK_CONF``: more Spark settings for the session, ``name=value`` pairs separated by
    whitespace (e.g. ``spark.executor.memory=8g spark.sql.shuffle.partitions=400``); they win over
    the defaults above."""
    pairs = os.environ.get("OKR_SPARK_CONF", "").split()
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise ValueError(f"OKR_SPARK_CONF entries must be name=value: {bad}")
    return dict(p.split("=", 1) for p in pairs)


# -- the catalog -------------------------------------------------------------------------------------


def _new_catalog() -> dict[str, Any]:
    return {"version": 0, "tables": {}}


class SparkConnection:
    """The session, the catalog as committed, and, inside a transaction that writes, the catalog
    as it will be committed (``pending``), which this session's queries then read."""

    def __init__(self, backend: SparkBackend, spark: Any) -> None:
        self.backend = backend
        self.spark = spark
        self.committed = backend.read_catalog()
        self.pending: dict[str, Any] | None = None
        self._lock: Any = None
        self.written: list[Path] = []  # directories this transaction wrote (removed on rollback)

    def begin(self) -> None:
        if self.pending is not None:
            raise RuntimeError("a Spark warehouse transaction is already open on this connection")

    def writing(self) -> dict[str, Any]:
        """The pending catalog, after taking the writer lock and re-reading the committed one
        (another writer may have committed since this connection opened)."""
        if self.pending is None:
            self._lock = self.backend.writer_lock()
            self.committed = self.backend.read_catalog()
            self.pending = copy.deepcopy(self.committed)
        return self.pending

    def catalog(self) -> dict[str, Any]:
        return self.pending if self.pending is not None else self.committed

    def commit(self) -> None:
        try:
            if self.pending is not None and self.pending != self.committed:
                self.pending["version"] = int(self.committed.get("version", 0)) + 1
                self.backend.write_catalog(self.pending)
                self.committed = self.pending
                self.backend.collect_garbage(self.committed)
        finally:
            self.pending = None
            self.written = []
            self._release()

    def rollback(self) -> None:
        try:
            if self.pending is not None:
                for path in self.written:
                    shutil.rmtree(path, ignore_errors=True)
                self.pending = None
                self.written = []
                self.backend.register(self.spark, self.committed)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None


class SparkBackend:
    """Spark SQL over Parquet tables listed in the warehouse folder's catalog file."""

    name = "spark"
    embedded = False
    sql_catalog = False  # the tables are in the catalog file, not in an information_schema
    work_catalog = None  # staging twins are tables of their schema, under <folder>/_work
    cte_materialized = ""  # Spark SQL has no MATERIALIZED hint on a common table expression

    def __init__(self, url: str, tables: Sequence[Any], lock_timeout_seconds: float,
                 driver_memory: str = "2g", master_override: str = "") -> None:
        self.master, self.remote, folder = parse_url(url)
        if self.master is None and master_override:
            self.master = master_override
        self.folder = folder.resolve()
        self.tables = {t.qualified: t for t in tables}
        self.lock_timeout_seconds = lock_timeout_seconds
        self.driver_memory = driver_memory
        self.display = url

    # -- connections and statements -----------------------------------------------------------

    @property
    def ibis_dialect(self) -> str:
        """Ibis's Spark SQL compiler takes options from a connected session: one is started first."""
        self.spark  # noqa: B018
        return "pyspark"

    @property
    def spark(self) -> Any:
        return session(self.master, self.remote, session_conf(self.master, self.driver_memory))

    @contextlib.contextmanager
    def connect(self) -> Iterator[SparkConnection]:
        self.folder.mkdir(parents=True, exist_ok=True)
        spark = self.spark
        con = SparkConnection(self, spark)
        self.register(spark, con.committed)
        try:
            yield con
        finally:
            if con.pending is not None:  # left without COMMIT or ROLLBACK: nothing is kept
                con.rollback()

    def execute(self, con: SparkConnection, sql: str, params: Sequence[Any] = ()) -> None:
        word = sql.strip().upper()
        if word == "BEGIN":
            con.begin()
        elif word == "COMMIT":
            con.commit()
        elif word == "ROLLBACK":
            con.rollback()
        else:
            con.spark.sql(sql, args=_params(params)).collect()

    @staticmethod
    def adjust(sql: str) -> str:
        """Compiled transforms run as Ibis writes them for Spark SQL."""
        return sql

    def fetch(self, con: SparkConnection, sql: str, params: Sequence[Any] = (), text_storage: str = "python"
              ) -> pd.DataFrame:
        return _frame(con.spark.sql(sql, args=_params(params)), text_storage)

    def stage(self, con: SparkConnection, name: str, frame: pd.DataFrame | pa.Table, types: list[tuple[str, str]],
              keys: Sequence[str] | None = None) -> None:
        con.spark.createDataFrame(_arrow(frame, types)).createOrReplaceTempView(name)

    def unstage(self, con: SparkConnection, name: str) -> None:
        con.spark.catalog.dropTempView(name)

    def load(self, con: SparkConnection, qualified: str, columns: list[str], frame: pd.DataFrame | pa.Table) -> None:
        table = self.tables[qualified]
        types = dict(self._columns(con, table))
        view = f"_okr_load_{uuid.uuid4().hex[:8]}"
        self.stage(con, view, frame, [(c, types[c]) for c in columns])
        try:
            self.insert_select(con, table, columns, f"SELECT {', '.join(quote(c) for c in columns)} FROM {view}")
        finally:
            self.unstage(con, view)

    def prepare_work(self, con: SparkConnection) -> None:
        """Nothing to do: ``register`` makes the staging twins with the tables."""

    def analyze(self, con: SparkConnection, qualified: str, grown_by: int | None = None,
                columns: Sequence[str] | None = None) -> None:
        """Nothing to do: Spark plans on file sizes and Parquet footers."""

    def lock_exclusive_writes(self, con: SparkConnection, qualified: str) -> None:
        """Take the writer lock now, for the rest of the transaction: what the transaction reads
        next (``max(raw_id)``) is then what it commits on."""
        con.writing()
        self.register(con.spark, con.catalog())

    def lost_connection(self, exc: BaseException) -> str | None:
        return None

    def missing_table(self, exc: BaseException) -> bool:
        return "TABLE_OR_VIEW_NOT_FOUND" in str(exc) or "SCHEMA_NOT_FOUND" in str(exc)

    @contextlib.contextmanager
    def held_open(self) -> Iterator[None]:
        """Nothing to hold: the session lives as long as the process."""
        yield

    @contextlib.contextmanager
    def exclusive(self, name: str, on_wait: Callable[[str], None]) -> Iterator[None]:
        """A lock file ``<folder>/_locks/<name>.lock`` held (``flock``) until the block ends;
        the operating system releases it if the process dies."""
        with _flock(self.folder / "_locks" / f"{name}.lock", self.lock_timeout_seconds,
                    lambda: on_wait(f"waiting for another run that holds the {name!r} writer lock on "
                                    f"{self.folder}")):
            yield

    # -- writes (called inside a transaction) ------------------------------------------------------

    def create_tables(self, con: SparkConnection, specs: Sequence[tuple[Any, list[tuple[str, str]]]]) -> None:
        """Tables missing from the catalog, empty; a table whose model gained or lost columns gets
        the new column list (Parquet files are read by column name: a new column reads as null)."""
        catalog = self.read_catalog()
        wanted = {t.qualified: (t, [list(c) for c in cols]) for t, cols in specs}
        stale = [q for q, (t, cols) in wanted.items()
                 if catalog["tables"].get(q, {}).get("columns") != cols]
        for schema in sorted({t.schema for t, _ in specs}):
            con.spark.sql(f"CREATE DATABASE IF NOT EXISTS {quote(schema)}")
        if stale:
            pending = con.writing()
            for q in stale:
                table, cols = wanted[q]
                entry = pending["tables"].setdefault(q, {})
                entry["columns"] = cols
                entry["partition_column"] = table.partition_column
                if table.partition_column:
                    entry.setdefault("partitions", {})
                else:
                    entry.setdefault("location", self._new_dir(con, table, ""))
        self.register(con.spark, con.catalog())

    def insert_select(self, con: SparkConnection, table: Any, columns: Sequence[str], select: str,
                      params: Sequence[Any] = (), skip_existing: bool = False) -> None:
        """Append the rows of ``select`` (``skip_existing``: those whose key is not in the table)."""
        if skip_existing and table.key:
            keys = " AND ".join(f"n.{quote(k)} <=> t.{quote(k)}" for k in table.key)
            select = (f"SELECT n.* FROM ({select}) n LEFT ANTI JOIN {table.qualified} t ON {keys}")
        rows = con.spark.sql(select, args=_params(params)).select(*columns)
        self._append(con, table, rows)

    def replace_range(self, con: SparkConnection, table: Any, column: str, start: dt.date, end: dt.date,
                      columns: Sequence[str], select: str, params: Sequence[Any] = ()) -> None:
        """The table's partitions ``start <= column < end`` become the rows of ``select``."""
        if table.partition_column != column:
            raise ValueError(f"{table.qualified} is partitioned by {table.partition_column}, not {column}")
        rows = con.spark.sql(select, args=_params(params)).select(*columns)
        pending = con.writing()
        partitions = pending["tables"][table.qualified]["partitions"]
        for value in [v for v in partitions if start.isoformat() <= v < end.isoformat()]:
            del partitions[value]
        written = self._write_partitioned(con, table, rows)
        outside = [v for v in written if not start.isoformat() <= v < end.isoformat()]
        if outside:
            raise ValueError(f"rows for {table.qualified} outside {start} .. {end}: {outside[:5]}")
        partitions.update(written)
        self.register(con.spark, pending)

    def replace_all(self, con: SparkConnection, table: Any, columns: list[str], frame: pd.DataFrame) -> None:
        types = dict(self._columns(con, table))
        rows = con.spark.createDataFrame(_arrow(frame, [(c, types[c]) for c in columns]))
        pending = con.writing()
        entry = pending["tables"][table.qualified]
        if table.partition_column:
            entry["partitions"] = self._write_partitioned(con, table, rows)
        else:
            entry["location"] = self._write_dir(con, table, rows, link_from=None)
        self.register(con.spark, pending)

    def clear(self, con: SparkConnection, table: Any) -> None:
        """Empty a staging twin (not in the catalog: only ever read inside one refresh)."""
        location = self._twin_dir(table)
        shutil.rmtree(location, ignore_errors=True)
        location.mkdir(parents=True, exist_ok=True)
        con.spark.sql(f"REFRESH TABLE {table.qualified}")

    def create_as(self, con: SparkConnection, table: Any, select: str) -> None:
        """``table`` (a scratch table of the work area) holding the rows of ``select``."""
        location = self._twin_dir(table)
        shutil.rmtree(location, ignore_errors=True)
        con.spark.sql(select).write.parquet(str(location))
        con.spark.sql(f"DROP TABLE IF EXISTS {table.qualified}")
        con.spark.sql(f"CREATE TABLE {table.qualified} USING parquet LOCATION {_literal(str(location))}")

    # -- files and the catalog -------------------------------------------------------------------

    def read_catalog(self) -> dict[str, Any]:
        path = self.folder / CATALOG_FILE
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return _new_catalog()

    def write_catalog(self, catalog: dict[str, Any]) -> None:
        """Replace the catalog file in one rename (the commit): readers see the old or the new."""
        path = self.folder / CATALOG_FILE
        tmp = path.with_name(f".{CATALOG_FILE}.{uuid.uuid4().hex}")
        with open(tmp, "w") as handle:
            json.dump(catalog, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def writer_lock(self) -> Any:
        return _acquire(self.folder / "_okr_catalog.lock", self.lock_timeout_seconds)

    def collect_garbage(self, catalog: dict[str, Any]) -> None:
        """Delete the directories under the table folders that ``catalog`` does not reference,
        once none of their files changed for ``RETAIN_SECONDS``."""
        referenced: set[Path] = set()
        roots: set[Path] = set()
        for q, entry in catalog["tables"].items():
            roots.add(self._root_of(q))
            dirs = entry.get("partitions", {}).values() if entry.get("partition_column") else [entry.get("location")]
            referenced |= {(self.folder / d).resolve() for d in dirs if d}
        cutoff = time.time() - RETAIN_SECONDS
        for root in roots:
            for commit_dir in _subdirs(root):
                leaves = [p for p in _subdirs(commit_dir) if _PARTITION_DIR.fullmatch(p.name)] or [commit_dir]
                for leaf in leaves:
                    if leaf.resolve() not in referenced and _newest_mtime(leaf) < cutoff:
                        shutil.rmtree(leaf, ignore_errors=True)
                with contextlib.suppress(OSError):
                    if commit_dir.exists() and commit_dir.resolve() not in referenced and not any(commit_dir.iterdir()):
                        commit_dir.rmdir()

    def register(self, spark: Any, catalog: dict[str, Any]) -> None:
        """Make this session's tables those of ``catalog`` (only the ones that changed), and the
        staging twins of the staged tables."""
        seen = _REGISTERED.setdefault(id(spark), {})
        for q, entry in catalog["tables"].items():
            table = self.tables.get(q)
            if table is None:
                continue
            signature = json.dumps([str(self.folder), entry], sort_keys=True)
            if seen.get(q) == signature:
                continue
            if seen.get(table.schema) is None:  # a session starts with no databases but "default"
                spark.sql(f"CREATE DATABASE IF NOT EXISTS {quote(table.schema)}")
                seen[table.schema] = "database"
            columns = ", ".join(f"{quote(c)} {SPARK_TYPES[t]}" for c, t in entry["columns"])
            # The Parquet table, and a view of it with the model's column order under the table's
            # name: Spark puts a table's partition column last.
            files = f"{quote(table.schema)}.{quote(table.name + '__parquet')}"
            spark.sql(f"DROP TABLE IF EXISTS {files}")
            part = entry.get("partition_column")
            if part:
                root = self._root_of(q)
                root.mkdir(parents=True, exist_ok=True)
                spark.sql(f"CREATE TABLE {files} ({columns}) USING parquet PARTITIONED BY ({quote(part)}) "
                          f"LOCATION {_literal(str(root))}")
                specs = [f"PARTITION ({quote(part)} = DATE'{v}') LOCATION {_literal(str(self.folder / d))}"
                         for v, d in sorted(entry["partitions"].items())]
                for i in range(0, len(specs), 500):
                    spark.sql(f"ALTER TABLE {files} ADD IF NOT EXISTS {' '.join(specs[i:i + 500])}")
            else:
                location = self.folder / entry["location"]
                location.mkdir(parents=True, exist_ok=True)
                spark.sql(f"CREATE TABLE {files} ({columns}) USING parquet LOCATION {_literal(str(location))}")
            spark.sql(f"CREATE OR REPLACE VIEW {q} AS SELECT {', '.join(quote(c) for c, _ in entry['columns'])} "
                      f"FROM {files}")
            seen[q] = signature
            twin = self.twins.get(q)
            if twin is not None:
                self._register_twin(spark, twin, entry, seen)

    @property
    def twins(self) -> dict[str, Any]:
        """Staging twin of each staged table, by the table's qualified name."""
        from okr_assets.resources.warehouse import STAGED_TABLES, TABLES

        return {TABLES[n].qualified: TABLES[n].staged() for n in STAGED_TABLES}

    def _register_twin(self, spark: Any, twin: Any, entry: dict[str, Any], seen: dict[str, str]) -> None:
        location = self._twin_dir(twin)
        signature = json.dumps([str(location), entry["columns"]])
        if seen.get(twin.qualified) == signature:
            return
        location.mkdir(parents=True, exist_ok=True)
        columns = ", ".join(f"{quote(c)} {SPARK_TYPES[t]}" for c, t in entry["columns"])
        spark.sql(f"DROP TABLE IF EXISTS {twin.qualified}")
        spark.sql(f"CREATE TABLE {twin.qualified} ({columns}) USING parquet LOCATION {_literal(str(location))}")
        seen[twin.qualified] = signature

    def _columns(self, con: SparkConnection, table: Any) -> list[tuple[str, str]]:
        return [tuple(c) for c in con.catalog()["tables"][table.qualified]["columns"]]

    def _root_of(self, qualified: str) -> Path:
        table = self.tables[qualified]
        return self.folder / table.schema / table.name

    def _twin_dir(self, table: Any) -> Path:
        return self.folder / "_work" / table.schema / table.name

    def _new_dir(self, con: SparkConnection, table: Any, suffix: str) -> str:
        """A fresh directory name under the table's folder (relative to the warehouse folder)."""
        name = f"c{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}{suffix}"
        path = self._root_of(table.qualified) / name
        path.mkdir(parents=True)
        con.written.append(path)
        return str(path.relative_to(self.folder))

    def _write_dir(self, con: SparkConnection, table: Any, rows: Any, link_from: str | None) -> str:
        """``rows`` into a new directory (with the files of ``link_from``): its relative path."""
        relative = self._new_dir(con, table, "")
        target = self.folder / relative
        rows.coalesce(1).write.mode("overwrite").parquet(str(target))
        if link_from:
            _link_files(self.folder / link_from, target)
        return relative

    def _write_partitioned(self, con: SparkConnection, table: Any, rows: Any) -> dict[str, str]:
        """``rows`` into a new commit directory, one subdirectory per partition value (one file
        each: the rows are shuffled by the partition column first): value -> relative path."""
        column = table.partition_column
        relative = self._new_dir(con, table, "")
        target = self.folder / relative
        rows.repartition(column).write.mode("overwrite").partitionBy(column).parquet(str(target))
        written: dict[str, str] = {}
        for sub in _subdirs(target):
            match = _PARTITION_DIR.fullmatch(sub.name)
            if match is None or match["column"] != column:
                raise RuntimeError(f"unexpected directory {sub} in a write of {table.qualified} (a null {column}?)")
            written[match["value"]] = str(sub.relative_to(self.folder))
        return written

    def _append(self, con: SparkConnection, table: Any, rows: Any) -> None:
        pending = con.writing()
        entry = pending["tables"][table.qualified]
        if table.partition_column:
            written = self._write_partitioned(con, table, rows)
            for value, relative in written.items():
                old = entry["partitions"].get(value)
                if old:
                    _link_files(self.folder / old, self.folder / relative)
            entry["partitions"].update(written)
        else:
            entry["location"] = self._write_dir(con, table, rows, link_from=entry["location"])
        self.register(con.spark, pending)


# Per session (by id): qualified name -> the catalog entry it is registered with.
_REGISTERED: dict[int, dict[str, str]] = {}


def _frame(df: Any, text_storage: str = "python") -> pd.DataFrame:
    """A Spark result as the DataFrame DuckDB would give: Spark's timestamps are UTC instants."""
    import pyarrow as pa

    table = df.toArrow()
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp("us", tz="UTC")))
    return arrow_to_frame(table, text_storage)


def _arrow(frame: pd.DataFrame | pa.Table, types: list[tuple[str, str]]) -> pa.Table:
    """``frame``'s ``types`` columns as an Arrow table of those SQL types."""
    import ibis
    import pyarrow as pa

    from okr_assets.resources.warehouse import _IBIS_TYPES

    columns = [c for c, _ in types]
    selected = _with_columns(frame, columns)
    table = selected if isinstance(selected, pa.Table) else pa.Table.from_pandas(selected, preserve_index=False)
    schema = ibis.schema({c: _IBIS_TYPES.get(t, "timestamp") for c, t in types}).to_pyarrow()
    return table.cast(schema)


def _params(params: Sequence[Any]) -> list[Any]:
    """Query parameters as Spark takes them (Python dates, datetimes, numbers and strings)."""
    import numpy as np
    import pandas as pd

    out: list[Any] = []
    for value in params:
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        elif isinstance(value, np.generic):
            value = value.item()
        out.append(value)
    return out


def _literal(text: str) -> str:
    """A Spark SQL string literal (backslash escapes, unlike standard SQL)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _subdirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    except FileNotFoundError:
        return []


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for child in path.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, child.stat().st_mtime)
    return newest


def _link_files(source: Path, target: Path) -> None:
    """The data files of ``source`` also in ``target``: hard links (no copy) where the filesystem
    has them, copies otherwise. Spark names each file by its write's id, so names never clash."""
    for path in source.iterdir():
        if path.is_file() and not path.name.startswith((".", "_")):
            destination = target / path.name
            try:
                os.link(path, destination)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(path, destination)


def _acquire(path: Path, timeout_seconds: float, on_wait: Callable[[], None] = lambda: None) -> Any:
    """An open descriptor of ``path`` holding its exclusive ``flock``, waiting up to the timeout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held until the caller closes it
    deadline = time.monotonic() + timeout_seconds
    waited = False
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise TimeoutError(f"{path} stayed locked by another run for {timeout_seconds:.0f} s") from None
            if not waited:
                on_wait()
                waited = True
            time.sleep(0.1)


@contextlib.contextmanager
def _flock(path: Path, timeout_seconds: float, on_wait: Callable[[], None]) -> Iterator[None]:
    handle = _acquire(path, timeout_seconds, on_wait)
    try:
        yield
    finally:
        handle.close()
