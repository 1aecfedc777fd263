"""Running the transforms' Ibis expressions over DataFrames.

The assets hand their expressions to the warehouse, which compiles them for its engine. The
model's pure code and its tests have DataFrames instead: ``on_frames`` loads them into an
in-memory DuckDB and runs the same expression there, so there is one implementation of each
transform.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ibis
    import pandas as pd


def on_frames(build: Callable[..., ibis.Table], order_by: list[str], dates: tuple[str, ...] = (),
              **frames: pd.DataFrame) -> pd.DataFrame:
    """``build(**tables)`` over the DataFrames ``frames`` (each a table of the same name), as a
    DataFrame in the dtypes ``WarehouseResource.query`` returns, with nanosecond timestamps (as
    the pandas code downstream builds its own), ordered by ``order_by``. The ``dates`` columns
    (datetime64 in pandas, which has no date type) become dates, as the warehouse stores them."""
    import duckdb
    import ibis
    import pandas as pd

    from okr_assets.resources.warehouse_backends import arrow_to_frame

    db = duckdb.connect()
    try:
        db.execute("SET TimeZone = 'UTC'")
        for name, frame in frames.items():
            db.register(f"{name}_frame", frame)
            db.execute(f'CREATE TEMP TABLE "{name}" AS SELECT * FROM "{name}_frame"')
        con = ibis.duckdb.from_connection(db)
        tables = {}
        for name in frames:
            table = con.table(name)
            tables[name] = table.mutate(**{c: table[c].cast("date") for c in dates if c in table.columns})
        expr = build(**tables).order_by(order_by)
        out = arrow_to_frame(db.sql(ibis.to_sql(expr, dialect="duckdb")).to_arrow_table())
    finally:
        db.close()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.as_unit("ns")
    return out
