"""Running the transforms' Ibis expressions over DataFrames.

The assets hand their expressions to the warehouse, which compiles them for its engine. The
model's pure code and its tests have DataFrames instead: ``in_memory`` loads them into an
in-memory DuckDB, where the same expressions run (``on_frames`` for a transform,
``okr_assets.lib.table_checks.on_frame`` for a table's checks), so there is one implementation
of each transform and each check.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis
    import pandas as pd


@dataclass(frozen=True)
class InMemory:
    """An in-memory DuckDB holding some DataFrames as tables of the same names."""

    db: Any

    def table(self, name: str) -> ibis.Table:
        """The table ``name`` as an unbound Ibis table: expressions over equal tables are equal
        nodes, so their SQL is compiled once per process (``sql_of``)."""
        import ibis

        return ibis.table(ibis.duckdb.from_connection(self.db).table(name).schema(), name=name)

    def fetch(self, expr: ibis.Expr) -> pd.DataFrame:
        return self.fetch_sql(sql_of(expr.op()))

    def fetch_sql(self, sql: str) -> pd.DataFrame:
        """The rows of ``sql`` in the dtypes ``WarehouseResource.query`` returns."""
        from okr_assets.resources.warehouse_backends import arrow_to_frame

        with warnings.catch_warnings():
            # DuckDB's Python API tokenises a relation's SQL in Python (a fifth of a second for the
            # validation's); the DB-API path does not, for one extra copy of the (small) result.
            warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
            return arrow_to_frame(self.db.execute(sql).to_arrow_table())


@contextmanager
def in_memory(dates: tuple[str, ...] = (), **frames: pd.DataFrame) -> Iterator[InMemory]:
    """The DataFrames ``frames`` as tables of an in-memory DuckDB (UTC, as the warehouse), their
    ``dates`` columns (datetime64 in pandas, which has no date type) as dates, as the warehouse
    stores them."""
    import duckdb

    db = duckdb.connect()
    try:
        db.execute("SET TimeZone = 'UTC'")
        for name, frame in frames.items():
            db.register(f"{name}_frame", frame)
            casts = ", ".join(f'CAST("{c}" AS DATE) AS "{c}"' for c in dates if c in frame.columns)
            db.execute(f'CREATE TEMP TABLE "{name}" AS SELECT * {f"REPLACE ({casts})" if casts else ""} '
                       f'FROM "{name}_frame"')
        yield InMemory(db)
    finally:
        db.close()


@functools.lru_cache(maxsize=256)
def sql_of(node: Any) -> str:
    """DuckDB SQL of an Ibis expression, by its node (nodes compare by structure, expressions do
    not): compiling a large expression takes Ibis up to a second, longer than running it on a
    test's rows."""
    import ibis

    return ibis.to_sql(node.to_expr(), dialect="duckdb")


def on_frames(build: Callable[..., ibis.Table], order_by: list[str], dates: tuple[str, ...] = (),
              cache_key: Hashable = None, **frames: pd.DataFrame) -> pd.DataFrame:
    """``build(**tables)`` over the DataFrames ``frames`` (each a table of the same name), as a
    DataFrame in the dtypes ``WarehouseResource.query`` returns, with nanosecond timestamps (as
    the pandas code downstream builds its own), ordered by ``order_by``; ``dates``: as for
    ``in_memory``.

    ``cache_key``: ``build`` depends only on this (and the frames' column types), so its SQL is
    looked up without building the expression (building the validation's takes Ibis a tenth of a
    second)."""
    import pandas as pd

    with in_memory(dates, **frames) as mem:
        tables = {name: mem.table(name) for name in frames}
        if cache_key is None:
            sql = sql_of(build(**tables).order_by(list(order_by)).op())
        else:
            key = (cache_key, tuple(order_by), tuple((name, t.schema()) for name, t in tables.items()))
            if key not in _COMPILED:
                _COMPILED[key] = sql_of(build(**tables).order_by(list(order_by)).op())
            sql = _COMPILED[key]
        out = mem.fetch_sql(sql)
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.as_unit("ns")
    return out


_COMPILED: dict[Hashable, str] = {}
