"""The warehouse: where the four tables live, behind one Dagster resource.

Embedded default: one DuckDB file under ``$OKR_HOME``. DuckDB is columnar and loads a pandas
frame with one ``INSERT ... SELECT`` (no per-row round trips), which keeps landing and partition
rewrites fast on a laptop; SQLite would need row-wise inserts. DuckDB allows one writing process
at a time, so every operation opens a short-lived connection and retries while another run holds
the lock (runs are also serialised per lane by tag concurrency limits in ``dagster.yaml``).

Tables are grouped in schemas by layer (``okr_raw``, ``okr_processed``, ``okr_curated``) with
DDL derived from the Pandera models, so the stored shape cannot drift from the checked shape.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from okr_assets.lib.schemas import TABLE_MODELS, sql_columns

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class LandResult:
    inserted: int
    # okr_processed partitions whose content may change: those of the new rows, and those of
    # older versions of the same check-ins (which the new rows now supersede).
    touched_partitions: set[str]


@dataclass(frozen=True)
class Table:
    name: str
    schema: str
    key: tuple[str, ...] | None = None  # unique key (idempotent landing)
    indexes: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


TABLES: dict[str, Table] = {
    "okr_raw": Table("okr_raw", "okr_raw", key=("source_key",),
                     indexes=("partition_date", "checkin_id")),
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


def _quote(identifier: str) -> str:
    """Quote an SQL identifier; identifiers come from our own table registry, never from data."""
    return '"' + identifier.replace('"', '""') + '"'


class WarehouseResource(ConfigurableResource):
    """SQL warehouse holding okr_raw, okr_processed, okr_rejects and okr_curated.

    ``url`` is ``duckdb:///<path>`` for the embedded database (default under ``$OKR_HOME``).
    """

    url: str = Field(description="duckdb:///<path> (embedded default). Set via OKR_WAREHOUSE_URL.")
    lock_timeout_seconds: float = Field(
        default=300.0, description="How long to wait for another run's write lock on the embedded DB.")

    # -- connections -------------------------------------------------------------------------

    @property
    def duckdb_path(self) -> Path:
        if not self.url.startswith("duckdb:///"):
            raise ValueError(
                f"unsupported warehouse URL scheme in {self.url.split('://')[0]!r}://...: "
                "this version supports duckdb:///<path> (PostgreSQL support is tracked in issue 5)"
            )
        return Path(self.url.removeprefix("duckdb:///"))

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        import duckdb

        path = self.duckdb_path
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_seconds
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(path))
                break
            except duckdb.IOException as exc:  # another process holds the write lock
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()

    # -- schema --------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create schemas, tables and indexes if missing (idempotent)."""
        with self.connect() as con:
            for table in (*TABLES.values(), LANDED_FILES):
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(table.schema)}")
                columns = (LANDED_FILES_COLUMNS if table is LANDED_FILES
                           else sql_columns(TABLE_MODELS[table.name]))
                ddl = ", ".join(f"{_quote(c)} {t}" for c, t in columns)
                if table.key:
                    ddl += f", PRIMARY KEY ({', '.join(_quote(k) for k in table.key)})"
                con.execute(f"CREATE TABLE IF NOT EXISTS {table.qualified} ({ddl})")
                for col in table.indexes:
                    con.execute(
                        f"CREATE INDEX IF NOT EXISTS {_quote(f'{table.name}_{col}_idx')} "
                        f"ON {table.qualified} ({_quote(col)})"
                    )

    def columns(self, table: str) -> list[str]:
        return [c for c, _ in sql_columns(TABLE_MODELS[table])]

    # -- reads ---------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a parameterised query (``?`` placeholders) and return a DataFrame."""
        with self.connect() as con:
            return _normalise(con.execute(sql, list(params)).df())

    def read_range(self, table: str, column: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Rows of ``table`` with ``start <= column < end``."""
        t = TABLES[table]
        return self.query(
            f"SELECT * FROM {t.qualified} WHERE {_quote(column)} >= ? AND {_quote(column)} < ? "
            f"ORDER BY 1", [start, end])

    def count(self, table: str) -> int:
        with self.connect() as con:
            return int(con.execute(f"SELECT count(*) FROM {TABLES[table].qualified}").fetchone()[0])

    # -- writes --------------------------------------------------------------------------------

    def land_raw(self, rows: pd.DataFrame, file_sha256: str | None = None, file_name: str | None = None,
                 run_id: str = "") -> LandResult:
        """Append rows to okr_raw, skipping any whose ``source_key`` already landed.

        ``raw_id`` is assigned in row order after the current maximum, inside the write
        transaction, so it orders versions of a check-in by ingestion.
        """
        t = TABLES["okr_raw"]
        cols = [c for c in self.columns("okr_raw") if c != "raw_id"]
        frame = rows.reset_index(drop=True).reindex(columns=cols)
        frame["_rn"] = range(1, len(frame) + 1)
        collist = ", ".join(_quote(c) for c in cols)
        with self.transaction() as con:
            con.register("incoming", frame)
            returned = con.execute(
                f"INSERT INTO {t.qualified} ({collist}, raw_id) "
                f"SELECT {collist}, (SELECT coalesce(max(raw_id), 0) FROM {t.qualified}) + _rn "
                f"FROM incoming ORDER BY _rn ON CONFLICT DO NOTHING "
                f"RETURNING raw_id, partition_date, checkin_id"
            ).df()
            con.unregister("incoming")
            con.register("returned", returned)
            touched = con.execute(
                f"SELECT DISTINCT strftime(partition_date, '%Y-%m-%d') FROM {t.qualified} "
                "WHERE raw_id IN (SELECT raw_id FROM returned) OR trim(checkin_id) IN "
                "(SELECT trim(checkin_id) FROM returned WHERE checkin_id IS NOT NULL)"
            ).fetchall()
            con.unregister("returned")
            if file_sha256:
                con.execute(
                    f"INSERT INTO {LANDED_FILES.qualified} VALUES (?, ?, ?, now(), ?) "
                    f"ON CONFLICT DO NOTHING",
                    [file_sha256, file_name, len(returned), run_id])
        return LandResult(inserted=len(returned), touched_partitions={r[0] for r in touched})

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _insert(self, con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
        """Bulk-insert a frame (one INSERT ... SELECT over the registered frame, no per-row calls)."""
        cols = self.columns(table)
        collist = ", ".join(_quote(c) for c in cols)
        con.register("incoming", frame.reindex(columns=cols))
        con.execute(f"INSERT INTO {TABLES[table].qualified} ({collist}) SELECT {collist} FROM incoming")
        con.unregister("incoming")

    def append(self, table: str, frame: pd.DataFrame) -> None:
        with self.transaction() as con:
            self._insert(con, table, frame)

    def replace_table(self, table: str, frame: pd.DataFrame) -> None:
        """Replace every row of an unpartitioned table, in one transaction."""
        with self.transaction() as con:
            con.execute(f"DELETE FROM {TABLES[table].qualified}")
            self._insert(con, table, frame)

    def file_landed(self, sha256: str) -> bool:
        with self.connect() as con:
            row = con.execute(
                f"SELECT 1 FROM {LANDED_FILES.qualified} WHERE sha256 = ?", [sha256]).fetchone()
        return row is not None

    def replace_ranges(self, start: dt.date, end: dt.date,
                       tables: Sequence[tuple[str, str, pd.DataFrame]]) -> None:
        """For each (table, column, frame): replace rows with ``start <= column < end`` by
        ``frame``. All tables change in one transaction, so a crash leaves the old rows intact."""
        with self.transaction() as con:
            for table, column, frame in tables:
                con.execute(f"DELETE FROM {TABLES[table].qualified} "
                            f"WHERE {_quote(column)} >= ? AND {_quote(column)} < ?", [start, end])
                self._insert(con, table, frame)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Make DuckDB's result types match the Pandera models (text as ``string``)."""
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype("string")
    return frame
