"""The warehouse: where the tables live, behind one Dagster resource.

Two engines, chosen by ``OKR_WAREHOUSE_URL``:
- embedded default, ``duckdb:///<path>`` under ``$OKR_HOME``: columnar, loads a pandas frame with
  one ``INSERT ... SELECT`` (no per-row round trips); one writing process at a time, so runs are
  also serialised per lane by tag concurrency limits in the embedded instance config;
- deployments, ``postgresql://user:password@host:port/db``: bulk loads with ``COPY``, concurrent
  landing made safe by a unique key, ``ON CONFLICT DO NOTHING`` and a per-table write lock.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from pydantic import Field

from okr_assets.resources.warehouse_backends import Backend, DuckDBBackend, PostgresBackend, quote

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class LandResult:
    inserted: int
    # okr_processed partitions whose content may change: those of the new rows, and those of
    # older versions of the same check-ins (which a new valid version supersedes).
    touched_partitions: set[str]
    # rows inserted per landed file (sha256), when files were landed
    inserted_by_file: dict[str, int] = field(default_factory=dict)
    # which of the given rows were inserted (positions, ascending) and the raw_id each got: what
    # the run wrote, for the okr_raw check, without reading it back
    positions: Any = None
    raw_ids: Any = None

    def inserted_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows (as given to ``land_raw``) that were inserted, with their ``raw_id``."""
        inserted = _columns_of(rows, list(rows.columns))
        if len(self.positions) != len(rows):
            inserted = inserted.take(self.positions).reset_index(drop=True)
        inserted["raw_id"] = self.raw_ids
        return inserted


@dataclass(frozen=True)
class Table:
    name: str
    schema: str
    key: tuple[str, ...] | None = None  # unique key (idempotent landing)
    indexes: tuple[str, ...] = ()
    # Indexes of earlier versions that no query uses any more: dropped by setup() where present.
    retired_indexes: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"


TABLES: dict[str, Table] = {
    "okr_raw": Table("okr_raw", "okr_raw", key=("source_key",),
                     # checkin_id: every query matches trim(checkin_id), which a plain index
                     # cannot serve; it only cost each landing commit (~0.5 s per million rows).
                     indexes=("partition_date",), retired_indexes=("checkin_id",)),
    "okr_processed": Table("okr_processed", "okr_processed", indexes=("checkin_date", "cycle_start")),
    "okr_rejects": Table("okr_rejects", "okr_processed", indexes=("partition_date",)),
    "okr_curated": Table("okr_curated", "okr_curated", indexes=("cycle_quarter",)),
    "okr_features": Table("okr_features", "okr_ml", indexes=("cycle_quarter",)),
    "okr_predictions": Table("okr_predictions", "okr_ml"),
    "okr_drift_report": Table("okr_drift_report", "okr_ml"),
    "okr_prediction_log": Table("okr_prediction_log", "okr_ml", indexes=("key_result_id",)),
    "okr_model_performance": Table("okr_model_performance", "okr_ml"),
    # Operational tables (alerts) live apart from the data layers.
    "okr_alerts": Table("okr_alerts", "okr_ops", key=("alert_id",), indexes=("raised_at",)),
}
LANDED_FILES = Table("landed_files", "okr_raw", key=("sha256",))
LANDED_FILES_COLUMNS: list[tuple[str, str]] = [
    ("sha256", "TEXT"), ("file_name", "TEXT"), ("rows", "BIGINT"),
    ("landed_at", "TIMESTAMPTZ"), ("run_id", "TEXT"),
]


class WarehouseResource(ConfigurableResource):
    """SQL warehouse holding okr_raw, okr_processed, okr_rejects, okr_curated and the ML tables.

    ``url``: ``duckdb:///<path>`` (embedded default under ``$OKR_HOME``) or
    ``postgresql://user:password@host:port/database`` (deployments; schemas created on first use).
    """

    url: str = Field(description="duckdb:///<path> or postgresql://user:password@host:port/db. "
                                 "Set via OKR_WAREHOUSE_URL.")
    lock_timeout_seconds: float = Field(
        default=300.0, description="How long to wait for another run's write lock on the embedded DB.")

    # -- connections -------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        scheme = self.url.split("://", 1)[0].lower()
        if scheme == "duckdb":
            return DuckDBBackend(Path(self.url.removeprefix("duckdb:///")), self.lock_timeout_seconds)
        if scheme in {"postgresql", "postgres", "postgresql+psycopg2"}:
            return PostgresBackend(self.url)
        raise ValueError(f"unsupported warehouse URL scheme {scheme!r}://...: "
                         "use duckdb:///<path> or postgresql://user:password@host:port/database")

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
        """Create schemas, tables and indexes if missing (idempotent)."""
        backend = self.backend
        with backend.connect() as con:
            for table in (*TABLES.values(), LANDED_FILES):
                backend.execute(con, f"CREATE SCHEMA IF NOT EXISTS {quote(table.schema)}")
                columns = LANDED_FILES_COLUMNS if table is LANDED_FILES else _sql_columns(table.name)
                ddl = ", ".join(f"{quote(c)} {t}" for c, t in columns)
                if table.key:
                    ddl += f", PRIMARY KEY ({', '.join(quote(k) for k in table.key)})"
                backend.execute(con, f"CREATE TABLE IF NOT EXISTS {table.qualified} ({ddl})")
                for col in table.indexes:
                    backend.execute(con, f"CREATE INDEX IF NOT EXISTS {quote(f'{table.name}_{col}_idx')} "
                                         f"ON {table.qualified} ({quote(col)})")
                for col in table.retired_indexes:
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
                   text_storage: str = "python", columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of ``table`` with ``start <= column < end`` (``text_storage``: as for ``query``);
        only ``columns`` when given (a columnar engine then reads only those)."""
        t = _table(table)
        col = _column(t, column)
        selected = ", ".join(_column(t, c) for c in columns) if columns else "*"
        return self.query(f"SELECT {selected} FROM {t.qualified} WHERE {col} >= ? AND {col} < ? ORDER BY 1",
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

    def rows_sharing(self, table: str, key: str, column: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Rows of ``table`` with ``start <= column < end`` whose ``key`` value occurs more than once
        in that range (what a uniqueness rule checked a chunk at a time cannot see)."""
        t = _table(table)
        k, col = _column(t, key), _column(t, column)
        in_range = f"{col} >= ? AND {col} < ?"
        return self.query(f"SELECT * FROM {t.qualified} WHERE {in_range} AND {k} IN (SELECT {k} FROM "
                          f"{t.qualified} WHERE {in_range} GROUP BY {k} HAVING count(*) > 1) ORDER BY 1",
                          [start, end, start, end])

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) AS n FROM {_table(table).qualified}").iloc[0, 0])

    def file_landed(self, sha256: str) -> bool:
        found = self.query(f"SELECT 1 AS hit FROM {LANDED_FILES.qualified} WHERE sha256 = ?", [sha256])
        return len(found) > 0

    # -- writes --------------------------------------------------------------------------------

    def land_raw(self, rows: pd.DataFrame, file_sha256: str | None = None, file_name: str | None = None,
                 run_id: str = "", files: Sequence[tuple[str, str]] = ()) -> LandResult:
        """Append rows to okr_raw, skipping any whose ``source_key`` already landed.

        ``raw_id`` is assigned in row order after the current maximum, inside the write
        transaction (which holds the table's write lock), so it orders versions of a check-in by
        ingestion even when two landing runs commit at the same time. ``files`` (sha256, name)
        are the files the rows come from (source keys ``file:<sha256>:<line>``), recorded as
        landed in the same transaction; several files land in one transaction.

        Only the new ``raw_id`` values come back from the database; the partitions touched and
        the rows per file are counted by the database over the new rows (``raw_id > before``).
        """
        import numpy as np
        import pandas as pd

        files = [*files, *([(file_sha256, file_name or "")] if file_sha256 else [])]
        t = TABLES["okr_raw"]
        types = [(c, sql) for c, sql in _sql_columns("okr_raw") if c != "raw_id"]
        cols = [c for c, _ in types]
        frame = _columns_of(rows, cols)
        frame["_rn"] = np.arange(1, len(frame) + 1, dtype=np.int64)
        collist = ", ".join(quote(c) for c in cols)
        backend = self.backend
        with self.transaction() as con:
            backend.lock_exclusive_writes(con, t.qualified)
            before = int(backend.fetch(con, f"SELECT coalesce(max(raw_id), 0) AS n FROM {t.qualified}")["n"].iloc[0])
            backend.stage(con, "okr_incoming", frame, [*types, ("_rn", "BIGINT")])
            # raw_id comes from each row's position (_rn), so no ORDER BY: sorting every column of
            # the batch cost DuckDB ~0.6 s per million rows, for a physical order nothing reads.
            returned = backend.fetch(
                con,
                f"INSERT INTO {t.qualified} ({collist}, raw_id) SELECT {collist}, ? + _rn "
                f"FROM okr_incoming ON CONFLICT DO NOTHING RETURNING raw_id", [before])
            backend.unstage(con, "okr_incoming")
            # Partitions of the new rows, and of older versions of the same check-ins (which may change too).
            touched = backend.fetch(
                con,
                f"SELECT DISTINCT partition_date FROM {t.qualified} WHERE raw_id > ? OR trim(checkin_id) IN "
                f"(SELECT trim(checkin_id) FROM {t.qualified} WHERE raw_id > ? AND checkin_id IS NOT NULL)",
                [before, before])
            by_file: dict[str, int] = {}
            if files:  # rows per file counted by the database; one statement for all the files
                counted = backend.fetch(
                    con, f"SELECT split_part(source_key, ':', 2) AS sha256, count(*) AS n FROM {t.qualified} "
                         "WHERE raw_id > ? GROUP BY 1", [before])
                by_file = {str(k): int(n) for k, n in zip(counted["sha256"], counted["n"], strict=True)}
                landed = pd.DataFrame({"sha256": [sha for sha, _ in files], "file_name": [name for _, name in files],
                                       "rows": [by_file.get(sha, 0) for sha, _ in files], "run_id": run_id})
                backend.stage(con, "okr_files", landed,
                              [("sha256", "TEXT"), ("file_name", "TEXT"), ("rows", "BIGINT"), ("run_id", "TEXT")])
                backend.execute(con, f"INSERT INTO {LANDED_FILES.qualified} SELECT sha256, file_name, "
                                     f"{quote('rows')}, now(), run_id FROM okr_files ON CONFLICT DO NOTHING")
                backend.unstage(con, "okr_files")
        raw_ids = np.sort(np.asarray(returned["raw_id"], dtype=np.int64))
        return LandResult(inserted=len(raw_ids),
                          touched_partitions={_day(d) for d in touched["partition_date"].dropna()},
                          inserted_by_file={sha: by_file.get(sha, 0) for sha, _ in files},
                          positions=raw_ids - before - 1, raw_ids=raw_ids)

    def landed_digests(self, digests: Sequence[str]) -> set[str]:
        """The file hashes among ``digests`` that already landed (one query for a whole batch)."""
        if not digests:
            return set()
        import pandas as pd

        backend = self.backend
        with self.transaction() as con:  # PostgreSQL drops the staged table at commit
            backend.stage(con, "okr_digests", pd.DataFrame({"sha256": list(digests)}), [("sha256", "TEXT")])
            found = backend.fetch(con, f"SELECT sha256 FROM {LANDED_FILES.qualified} "
                                       "WHERE sha256 IN (SELECT sha256 FROM okr_digests)")
            backend.unstage(con, "okr_digests")
        return set(found["sha256"].tolist())

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
            backend.stage(con, "okr_incoming", frame, types)
            inserted = backend.fetch(con, f"INSERT INTO {t.qualified} ({collist}) SELECT {collist} "
                                          f"FROM okr_incoming ON CONFLICT DO NOTHING RETURNING 1 AS hit")
            backend.unstage(con, "okr_incoming")
        return len(inserted)

    def replace_table(self, table: str, frame: pd.DataFrame) -> None:
        """Replace every row of an unpartitioned table, in one transaction."""
        backend = self.backend
        with self.transaction() as con:
            backend.execute(con, f"DELETE FROM {_table(table).qualified}")
            backend.load(con, _table(table).qualified, self.columns(table), frame)

    def replace_ranges(self, start: dt.date, end: dt.date,
                       tables: Sequence[tuple[str, str, pd.DataFrame]]) -> None:
        """For each (table, column, frame): replace rows with ``start <= column < end`` by
        ``frame``. All tables change in one transaction, so a crash leaves the old rows intact."""
        self.replace_ranges_from(start, end, [(t, c) for t, c, _ in tables], [[f for _, _, f in tables]])

    def replace_ranges_from(self, start: dt.date, end: dt.date, targets: Sequence[tuple[str, str]],
                            chunks: Iterable[Sequence[pd.DataFrame]]) -> None:
        """Like ``replace_ranges``, with the new rows arriving as chunks (one frame per target
        each, e.g. a month at a time): still one transaction, but only one chunk is in memory.
        ``chunks`` may read the warehouse itself; it sees the rows as they were before."""
        backend = self.backend
        resolved = [(_table(table), self.columns(table), _column(_table(table), column))
                    for table, column in targets]
        with self.transaction() as con:
            for t, _, col in resolved:
                backend.execute(con, f"DELETE FROM {t.qualified} WHERE {col} >= ? AND {col} < ?", [start, end])
            for frames in chunks:
                for (t, columns, _), frame in zip(resolved, frames, strict=True):
                    if len(frame):
                        backend.load(con, t.qualified, columns, frame)


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


def _column(table: Table, name: str) -> str:
    """A quoted column of a registered table; refuses names that are not in its schema."""
    from okr_assets.lib.schemas import TABLE_MODELS

    if table.name in TABLE_MODELS and name not in {c for c, _ in _sql_columns(table.name)}:
        raise ValueError(f"{name!r} is not a column of {table.name}")
    return quote(name)


def _columns_of(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``rows.reset_index(drop=True).reindex(columns=columns)`` without copying the columns
    (a missing column is all null)."""
    import numpy as np
    import pandas as pd

    def values(c: str) -> Any:
        if c not in rows.columns:
            return np.full(len(rows), None, dtype=object)
        series = rows[c]
        return series.array if isinstance(series.dtype, pd.api.extensions.ExtensionDtype) else series.to_numpy()

    return pd.DataFrame({c: values(c) for c in columns}, copy=False)


def _day(value: object) -> str:
    import pandas as pd

    return pd.Timestamp(value).strftime("%Y-%m-%d")


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Make result types match the Pandera models (text as ``string``) on both engines."""
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype("string")
    return frame
