"""Running the transforms' Ibis expressions over DataFrames.

The assets hand their expressions to the warehouse, which compiles them for its engine. The
model's pure code and its tests have DataFrames instead: ``on_frames`` loads them into an
in-memory DuckDB and runs the same expression there, so there is one implementation of each
transform.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis
    import pandas as pd


def on_frames(build: Callable[..., ibis.Table], order_by: list[str], dates: tuple[str, ...] = (),
              cache_key: Hashable = None, **frames: pd.DataFrame) -> pd.DataFrame:
    """``build(**tables)`` over the DataFrames ``frames`` (each a table of the same name), as a
    DataFrame in the dtypes ``WarehouseResource.query`` returns, with nanosecond timestamps (as
    the pandas code downstream builds its own), ordered by ``order_by``. The ``dates`` columns
    (datetime64 in pandas, which has no date type) become dates, as the warehouse stores them.

    ``cache_key``: ``build`` depends only on this (and the frames' column types), so its SQL is
    compiled once per process; compiling a large expression takes Ibis about a second, far longer
    than running it on a test's rows."""
    import duckdb
    import pandas as pd

    from okr_assets.resources.warehouse_backends import arrow_to_frame

    db = duckdb.connect()
    try:
        db.execute("SET TimeZone = 'UTC'")
        for name, frame in frames.items():
            db.register(f"{name}_frame", frame)
            db.execute(f'CREATE TEMP TABLE "{name}" AS SELECT * FROM "{name}_frame"')
        types = tuple((name, tuple(db.table(name).columns), tuple(map(str, db.table(name).types))) for name in frames)
        if cache_key is None:
            sql = _compile(build, tuple(order_by), dates, types, db)
        else:
            key = (cache_key, tuple(order_by), dates, types)
            if key not in _COMPILED:
                _COMPILED[key] = _compile(build, tuple(order_by), dates, types, db)
            sql = _COMPILED[key]
        with warnings.catch_warnings():
            # DuckDB's Python API tokenises a relation's SQL in Python (a fifth of a second for the
            # validation's); the DB-API path does not, for one extra copy of the (small) result.
            warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
            out = arrow_to_frame(db.execute(sql).to_arrow_table())
    finally:
        db.close()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.as_unit("ns")
    return out


_COMPILED: dict[Hashable, str] = {}


def _compile(build: Callable[..., ibis.Table], order_by: tuple[str, ...], dates: tuple[str, ...],
             types: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...], db: Any) -> str:
    import ibis

    con = ibis.duckdb.from_connection(db)
    tables = {}
    for name, columns, _ in types:
        table = con.table(name)
        tables[name] = table.mutate(**{c: table[c].cast("date") for c in dates if c in columns})
    return ibis.to_sql(build(**tables).order_by(list(order_by)), dialect="duckdb")
