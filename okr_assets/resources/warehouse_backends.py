"""The two SQL engines behind the warehouse: embedded DuckDB and PostgreSQL (Spark, the third,
is ``warehouse_spark.py``).

Everything engine-specific lives here, so ``warehouse.py`` states *what* happens to the tables
(land, replace a range, read) once, in SQL every engine accepts. A backend knows how to connect,
how to run a query with ``?`` placeholders, how to bulk-load a DataFrame, how to make a frame
visible to SQL as a table for the duration of a statement, and how to write a statement's rows
into a table (``insert_select``, ``replace_range``: SQL's INSERT and DELETE here, new Parquet
files and a catalog switch on Spark).

numpy, pandas and the database drivers are imported by the functions that use them: the
resources are built whenever the code location loads, and that must not import them.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa


def quote(identifier: str) -> str:
    """Quote an SQL identifier. Identifiers come from our own table registry, never from data,
    and are quoted anyway so a name can never be read as SQL."""
    return '"' + identifier.replace('"', '""') + '"'


class Backend(Protocol):
    name: str
    ibis_dialect: str  # the SQL dialect Ibis compiles the transforms to for this engine
    embedded: bool  # in this process (DuckDB), not a server
    sql_catalog: bool  # tables made by SQL DDL, listed in information_schema (not Spark's catalog file)
    cte_materialized: str  # "MATERIALIZED " where the engine takes that hint on a common table expression
    # The catalog of the staging twins and scratch tables, when it is not the warehouse's own
    # (DuckDB: an in-memory database beside the file); None: beside the tables they stage.
    work_catalog: str | None

    def connect(self) -> contextlib.AbstractContextManager[Any]: ...
    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> None: ...
    @staticmethod
    def adjust(sql: str) -> str: ...
    def fetch(self, con: Any, sql: str, params: Sequence[Any] = (), text_storage: str = "python") -> pd.DataFrame: ...
    def load(self, con: Any, qualified: str, columns: list[str], frame: pd.DataFrame | pa.Table) -> None: ...
    def stage(self, con: Any, name: str, frame: pd.DataFrame | pa.Table, types: list[tuple[str, str]],
              keys: Sequence[str] | None = None) -> None: ...
    def prepare_work(self, con: Any) -> None: ...
    def unstage(self, con: Any, name: str) -> None: ...
    def analyze(self, con: Any, qualified: str, grown_by: int | None = None,
                columns: Sequence[str] | None = None) -> None: ...
    def lock_exclusive_writes(self, con: Any, qualified: str) -> None: ...
    def lost_connection(self, exc: BaseException) -> str | None: ...
    def missing_table(self, exc: BaseException) -> bool: ...
    def held_open(self) -> contextlib.AbstractContextManager[None]: ...
    def exclusive(self, name: str, on_wait: Callable[[str], None]) -> contextlib.AbstractContextManager[None]: ...
    def insert_select(self, con: Any, table: Any, columns: Sequence[str], select: str, params: Sequence[Any] = (),
                      skip_existing: bool = False) -> None: ...
    def replace_range(self, con: Any, table: Any, column: str, start: Any, end: Any, columns: Sequence[str],
                      select: str, params: Sequence[Any] = ()) -> None: ...
    def replace_all(self, con: Any, table: Any, columns: list[str], frame: pd.DataFrame) -> None: ...
    def clear(self, con: Any, table: Any) -> None: ...
    def create_as(self, con: Any, table: Any, select: str) -> None: ...


class SqlWrites:
    """The writes of the SQL engines: INSERT, DELETE and CREATE TABLE AS, inside the caller's
    transaction. ``table``: a ``warehouse.Table``."""

    sql_catalog = True
    execute: Callable[..., None]  # the engine's own
    load: Callable[..., None]

    def insert_select(self, con: Any, table: Any, columns: Sequence[str], select: str, params: Sequence[Any] = (),
                      skip_existing: bool = False) -> None:
        """Append the rows of ``select`` (``skip_existing``: those whose unique key is not there yet)."""
        collist = ", ".join(quote(c) for c in columns)
        conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
        self.execute(con, f"INSERT INTO {table.qualified} ({collist}) {select}{conflict}", params)

    def replace_range(self, con: Any, table: Any, column: str, start: Any, end: Any, columns: Sequence[str],
                      select: str, params: Sequence[Any] = ()) -> None:
        """The rows ``start <= column < end`` become the rows of ``select``."""
        col = quote(column)
        self.execute(con, f"DELETE FROM {table.qualified} WHERE {col} >= ? AND {col} < ?", [start, end])
        self.insert_select(con, table, columns, select, params)

    def replace_all(self, con: Any, table: Any, columns: list[str], frame: pd.DataFrame) -> None:
        self.execute(con, f"DELETE FROM {table.qualified}")
        self.load(con, table.qualified, columns, frame)

    def clear(self, con: Any, table: Any) -> None:
        self.execute(con, f"DELETE FROM {table.qualified}")

    def create_as(self, con: Any, table: Any, select: str) -> None:
        self.execute(con, f"DROP TABLE IF EXISTS {table.qualified}")
        self.execute(con, f"CREATE TABLE {table.qualified} AS {select}")


def arrow_to_frame(table: Any, text_storage: str = "python") -> pd.DataFrame:
    """A DataFrame with the dtypes the Pandera models expect, from an Arrow table: text as pandas
    ``string``, dates as ``datetime64``, and nullable integers/booleans (``Int64``/``boolean``)
    only where a column holds nulls. Going through Arrow builds the string objects in C++, about
    twice as fast as DuckDB's ``.df()`` on our text-heavy tables. ``text_storage="pyarrow"`` keeps
    text in Arrow memory (no Python strings at all) for code that only runs vectorised string
    operations on it."""
    import pandas as pd
    import pyarrow as pa

    dates = [i for i, f in enumerate(table.schema) if pa.types.is_date(f.type)]
    for i in dates:
        table = table.set_column(i, table.schema[i].name, table.column(i).cast(pa.timestamp("us")))
    mapping = {pa.string(): pd.StringDtype(text_storage), pa.large_string(): pd.StringDtype(text_storage),
               pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.bool_(): pd.BooleanDtype()}
    frame = table.to_pandas(types_mapper=mapping.get)
    for field, column in zip(table.schema, table.columns, strict=True):
        if column.null_count == 0 and (pa.types.is_integer(field.type) or pa.types.is_boolean(field.type)):
            frame[field.name] = frame[field.name].astype(field.type.to_pandas_dtype())
    return frame


def _with_columns(frame: pd.DataFrame | pa.Table, columns: list[str]) -> pd.DataFrame | pa.Table:
    """``frame`` with exactly these columns, in this order (copied only when they differ)."""
    if not hasattr(frame, "reindex"):  # an Arrow table: a selection shares its buffers
        return frame.select(columns)
    return frame if list(frame.columns) == columns else frame.reindex(columns=columns)


# -- DuckDB ----------------------------------------------------------------------------------------


class DuckDBBackend(SqlWrites):
    """One DuckDB file. DuckDB allows one writing process at a time: every operation opens a
    short-lived connection and retries while another run holds the file lock."""

    name = "duckdb"
    ibis_dialect = "duckdb"
    embedded = True
    cte_materialized = "MATERIALIZED "
    # Staging twins and scratch tables live in an in-memory database attached to the open file
    # (shared by the process's connections while one holds the file open, gone when the last
    # closes): DuckDB compresses every row group it writes into the file (a million staged rows:
    # ~1.2 s there, ~0.4 s in memory within the memory limit; past it DuckDB spills them beside
    # the file, and the gain shrinks). They only ever live inside one refresh, which holds the
    # file open (``exclusive``) from clearing them to publishing them.
    work_catalog = "okr_work"

    def __init__(self, path: Path, lock_timeout_seconds: float, memory_limit: str = "",
                 work_twins: Sequence[tuple[str, str, str]] = ()) -> None:
        if memory_limit and not re.fullmatch(r"[0-9]+(\.[0-9]+)?\s*[KMGT]i?B", memory_limit, re.I):
            raise ValueError(f"DuckDB memory limit {memory_limit!r} is not a size such as 512MB or 2GB")
        self.path = path
        self.lock_timeout_seconds = lock_timeout_seconds
        self.memory_limit = memory_limit
        self.work_twins = work_twins  # (schema, twin, table it stages): made in the work catalog

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_seconds
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:  # another process holds the write lock
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if self.memory_limit:
                con.execute(f"SET memory_limit = '{self.memory_limit}'")
            attached = con.execute("SELECT database_name FROM duckdb_databases() WHERE database_name = ?",
                                   [self.work_catalog]).fetchall()
            if not attached:
                con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {quote(self.work_catalog)}")
                self.prepare_work(con)
            yield con
        finally:
            con.close()

    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> None:
        con.execute(sql, list(params))

    @staticmethod
    def adjust(sql: str) -> str:
        """Compiled transforms run as Ibis writes them."""
        return sql

    def fetch(self, con: Any, sql: str, params: Sequence[Any] = (), text_storage: str = "python") -> pd.DataFrame:
        # A relation straight to Arrow (about twice as fast as .df() on text columns); through
        # con.execute(), DuckDB would copy the rows once more first.
        return arrow_to_frame(con.sql(sql, params=list(params)).to_arrow_table(), text_storage)

    def load(self, con: Any, qualified: str, columns: list[str], frame: pd.DataFrame) -> None:
        # One INSERT ... SELECT over the registered frame: DuckDB scans pandas memory directly.
        collist = ", ".join(quote(c) for c in columns)
        con.register("_okr_load", _with_columns(frame, columns))
        try:
            con.execute(f"INSERT INTO {qualified} ({collist}) SELECT {collist} FROM _okr_load")
        finally:
            con.unregister("_okr_load")

    def stage(self, con: Any, name: str, frame: pd.DataFrame | pa.Table, types: list[tuple[str, str]],
              keys: Sequence[str] | None = None) -> None:
        con.register(name, _with_columns(frame, [c for c, _ in types]))

    def unstage(self, con: Any, name: str) -> None:
        con.unregister(name)

    def prepare_work(self, con: Any) -> None:
        """Create the staging twins missing from the work catalog (it starts empty each time the
        file is opened), for the tables that exist: same columns, copied from the table."""
        work = self.work_catalog
        have = set(con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?",
                               [work]).fetchall())
        tables = set(con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                 "WHERE database_name = current_database()").fetchall())
        for schema, twin, table in self.work_twins:
            if (schema, twin) not in have and (schema, table) in tables:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(work)}.{quote(schema)}")
                con.execute(f"CREATE TABLE IF NOT EXISTS {quote(work)}.{quote(schema)}.{quote(twin)} AS "
                            f"SELECT * FROM {quote(schema)}.{quote(table)} LIMIT 0")

    def analyze(self, con: Any, qualified: str, grown_by: int | None = None,
                columns: Sequence[str] | None = None) -> None:
        """Nothing to do: DuckDB keeps each column's statistics up to date as rows are written."""

    def lock_exclusive_writes(self, con: Any, qualified: str) -> None:
        """Nothing to do: DuckDB has a single writer per file."""

    def lost_connection(self, exc: BaseException) -> str | None:
        return None  # an embedded file has no connection to lose

    def missing_table(self, exc: BaseException) -> bool:
        import duckdb

        return isinstance(exc, duckdb.CatalogException) and "does not exist" in str(exc)

    @contextlib.contextmanager
    def held_open(self) -> Iterator[None]:
        """Keep the database open across several operations: DuckDB checkpoints the file each
        time its last connection in the process closes (a second per commit of a large run)."""
        with self.connect():
            yield

    @contextlib.contextmanager
    def exclusive(self, name: str, on_wait: Callable[[str], None]) -> Iterator[None]:
        """The open file is the lock: DuckDB lets one process at a time have it open for writing,
        so holding it open excludes every other run's reads and writes until the block ends."""
        with self.held_open():
            yield


# -- PostgreSQL ------------------------------------------------------------------------------------

# Result column type OIDs (pg_type) that need converting to match DuckDB's frames.
_INT_OIDS = {20, 21, 23}
_FLOAT_OIDS = {700, 701, 1700}
_BOOL_OID = 16
_DATE_OID = 1082
_TIMESTAMP_OID = 1114
_TIMESTAMPTZ_OID = 1184


def to_pyformat(sql: str) -> str:
    """Translate ``?`` placeholders to psycopg2's ``%s`` (and escape literal ``%``), leaving
    quoted literals and identifiers alone, so the same SQL text runs on both engines."""
    out: list[str] = []
    quote_char: str | None = None
    for ch in sql:
        if quote_char:
            if ch == quote_char:
                quote_char = None
        elif ch in "'\"":
            quote_char = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


_COPY_CHUNK = 1 << 20  # bytes handed to libpq per call (psycopg2's default is 8 KiB)


def copy_csv(rows: pd.DataFrame | pa.Table) -> io.BytesIO:
    """Rows as input for ``COPY ... FROM STDIN (FORMAT csv)``, written by Arrow's CSV writer
    (C++, without the GIL). It quotes every text value and writes a null as an unquoted empty
    field, which is PostgreSQL's CSV null, so a null and an empty string stay apart; floats
    are written in their shortest round-trip form, timestamps in UTC with ``Z``."""
    import pyarrow as pa
    import pyarrow.csv

    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    buffer = io.BytesIO()
    pyarrow.csv.write_csv(table, buffer, pyarrow.csv.WriteOptions(include_header=False, quoting_style="needed"))
    buffer.seek(0)
    return buffer


def _column(values: list[Any], type_code: int) -> pd.Series | np.ndarray | list[Any]:
    import numpy as np
    import pandas as pd

    has_null = any(v is None for v in values)
    if type_code in _INT_OIDS:
        return pd.array(values, dtype="Int64") if has_null else np.array(values, dtype="int64")
    if type_code in _FLOAT_OIDS:
        return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    if type_code == _BOOL_OID:
        return pd.array(values, dtype="boolean") if has_null else np.array(values, dtype="bool")
    if type_code == _DATE_OID:
        return pd.to_datetime(pd.Series(values, dtype="object"))
    if type_code == _TIMESTAMPTZ_OID:
        return pd.to_datetime(pd.Series(values, dtype="object"), utc=True)
    if type_code == _TIMESTAMP_OID:
        return pd.to_datetime(pd.Series(values, dtype="object"))
    return values


class PostgresBackend(SqlWrites):
    """A PostgreSQL database over psycopg2. Bulk loads use ``COPY``; each operation has its own
    connection (runs are separate processes, and a pool would outlive them)."""

    name = "postgres"
    ibis_dialect = "postgres"
    embedded = False
    cte_materialized = "MATERIALIZED "
    work_catalog = None  # staging twins are tables of the same database: runs are processes

    def __init__(self, url: str, connect_timeout_seconds: int = 10) -> None:
        parts = urlsplit(url)
        self._dsn = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "dbname": unquote(parts.path.lstrip("/")),
            "connect_timeout": connect_timeout_seconds,
            "application_name": "okr_assets",
        }
        self.display = f"postgresql://{parts.hostname}:{parts.port or 5432}/{self._dsn['dbname']}"  # no password

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        import psycopg2

        try:
            con = psycopg2.connect(**self._dsn)
        except psycopg2.OperationalError as exc:
            # The message names the server, never the password.
            raise ConnectionError(f"cannot connect to the warehouse at {self.display}: {exc}".strip()) from None
        con.autocommit = True  # transactions are explicit (BEGIN/COMMIT), as on DuckDB
        try:
            with con.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                # No merge joins: PostgreSQL estimates a filter on a window's result (the latest
                # row per key result and week, ``rank = 0``) at 0.5% of its rows, and with that
                # estimate joined okr_features' as-of grid to it by merging on cycle_id alone,
                # the other keys as a filter: a cross product within each cycle (over 3 minutes
                # for 170,000 check-ins, 4.8 s hashed on all three keys). Every join of the
                # transforms is an equi-join a hash join serves.
                cur.execute("SET enable_mergejoin = off")
            yield con
        finally:
            con.close()

    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> None:
        with con.cursor() as cur:
            cur.execute(to_pyformat(sql), tuple(params))

    @staticmethod
    def adjust(sql: str) -> str:
        """Every derived table of a compiled transform gets ``OFFSET 0``, PostgreSQL's optimisation
        fence. Without it the planner pulls nested subqueries up into one level and writes each
        column's expression out wherever a later level uses it: the validation's staged typing
        (each stage reads the last one's columns several times) grew into a plan of over 10 GB.
        Fenced, each level computes its columns once per row; the filters that matter are on the
        base tables, below every fence."""
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(sql, dialect="postgres")
        for sub in tree.find_all(exp.Subquery):
            inner = sub.this
            if isinstance(inner, exp.Select) and not inner.args.get("limit") and not inner.args.get("offset"):
                inner.offset(0, copy=False)
        return tree.sql(dialect="postgres")

    def fetch(self, con: Any, sql: str, params: Sequence[Any] = (), text_storage: str = "python") -> pd.DataFrame:
        # text_storage is a hint for DuckDB's Arrow results; rows from psycopg2 are Python objects.
        import pandas as pd

        with con.cursor() as cur:
            cur.execute(to_pyformat(sql), tuple(params))
            rows = cur.fetchall()
            description = cur.description
        names = [d.name for d in description]
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return pd.DataFrame({name: _column(list(col), d.type_code)
                             for name, col, d in zip(names, columns, description, strict=True)}, columns=names)

    def load(self, con: Any, qualified: str, columns: list[str], frame: pd.DataFrame | pa.Table) -> None:
        collist = ", ".join(quote(c) for c in columns)
        with con.cursor() as cur:
            cur.copy_expert(f"COPY {qualified} ({collist}) FROM STDIN (FORMAT csv)",
                            copy_csv(_with_columns(frame, columns)), size=_COPY_CHUNK)

    def stage(self, con: Any, name: str, frame: pd.DataFrame | pa.Table, types: list[tuple[str, str]],
              keys: Sequence[str] | None = None) -> None:
        ddl = ", ".join(f"{quote(c)} {t}" for c, t in types)
        with con.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {quote(name)} ({ddl}) ON COMMIT DROP")
        self.load(con, quote(name), [c for c, _ in types], frame)
        # Autovacuum never analyses temporary tables. ``keys``: the only columns the statements
        # over the staged rows join or filter on, analysed alone (the rest is only copied): for
        # landing's batches, all columns took ~1.45 s per 200,000 Kafka rows, source_key ~0.45 s.
        self.analyze(con, quote(name), columns=keys)

    def analyze(self, con: Any, qualified: str, grown_by: int | None = None,
                columns: Sequence[str] | None = None) -> None:
        """Refresh the planner's statistics of a table just written in bulk (of ``columns`` only,
        when given). Autovacuum would only get to it up to a minute later, and a transform planned
        in that minute has no column statistics: features over 20,000 fresh check-ins ran for over
        eight minutes on such a plan, and in 1.8 s once analysed. ANALYZE samples (30,000 rows at
        the default statistics target), so it costs well under a second at a million rows; inside a
        transaction it counts that transaction's own new rows too. ``grown_by``: the rows just
        added, for a table written many times a run (okr_raw, per landing batch): analysed only when
        they are more than a tenth of the rows its statistics counted (autovacuum's rule)."""
        with con.cursor() as cur:
            if grown_by is not None:
                cur.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (qualified,))
                counted = cur.fetchone()[0]
                if counted > 0 and grown_by <= counted / 10:
                    return
            cols = f" ({', '.join(quote(c) for c in columns)})" if columns else ""
            cur.execute(f"ANALYZE {qualified}{cols}")

    def prepare_work(self, con: Any) -> None:
        """Nothing to do: ``WarehouseResource.setup`` creates the staging twins beside their tables."""

    def unstage(self, con: Any, name: str) -> None:
        with con.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {quote(name)}")

    def lost_connection(self, exc: BaseException) -> str | None:
        """A clear message when ``exc`` means the server went away mid-transaction (restart,
        failover, network): nothing was committed, so re-executing the run is safe."""
        import psycopg2

        # No SQLSTATE (the socket closed), class 08 (connection exception) or 57P0x (the server
        # is shutting down or restarting); other OperationalErrors are real errors of the statement.
        code = getattr(exc, "pgcode", None)
        if isinstance(exc, psycopg2.InterfaceError) or (
                isinstance(exc, psycopg2.OperationalError)
                and (code is None or code.startswith("08") or code.startswith("57P0"))):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return (f"lost the connection to the warehouse at {self.display} during a transaction "
                    f"({reason}); it was rolled back, nothing was written, and the run can be retried")
        return None

    def missing_table(self, exc: BaseException) -> bool:
        # 42P01 undefined_table, 3F000 invalid_schema_name
        return getattr(exc, "pgcode", None) in {"42P01", "3F000"}

    @contextlib.contextmanager
    def held_open(self) -> Iterator[None]:
        """Nothing to hold: every operation has its own server connection."""
        yield

    @contextlib.contextmanager
    def exclusive(self, name: str, on_wait: Callable[[str], None]) -> Iterator[None]:
        """A session advisory lock named ``okr:<name>``, held on a connection of its own until the
        block ends (the server releases it if the run dies). Other operations keep their own
        connections and transactions; only blocks holding the same name exclude each other."""
        with self.connect() as con, con.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"okr:{name}",))
            if not cur.fetchone()[0]:
                on_wait(f"waiting for another run that holds the {name!r} writer lock on {self.display}")
                cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"okr:{name}",))
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection has released it already
                    cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"okr:{name}",))

    def lock_exclusive_writes(self, con: Any, qualified: str) -> None:
        """Serialise writers of one table until the transaction ends (readers are not blocked),
        so ids assigned as ``max + n`` stay unique and ordered under concurrent runs."""
        with con.cursor() as cur:
            cur.execute(f"LOCK TABLE {qualified} IN SHARE ROW EXCLUSIVE MODE")
