"""A local Spark session for the tests, and the transforms' Ibis expressions run on it.

Spark is the third engine the transforms are written to run on. Until the warehouse resource
speaks Spark, these helpers load frames into a local session's catalog (Parquet tables in a
temporary warehouse folder) and run an expression there the way an engine runs it: compiled by
Ibis for Spark SQL, executed by Spark, only the result read back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

# Ibis 12 accepts pyspark >= 3.5, < 4.1; pyproject pins the 4.0 line.
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    # A test's tables are a few thousand rows: Spark's default of 200 shuffle partitions would
    # make every join and window 200 tiny tasks.
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.memory": "1g",
    # pandas frames go to the JVM and back as Arrow batches, not pickled rows through Python workers.
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


@contextlib.contextmanager
def spark_session(warehouse: Path) -> Iterator[Any]:
    """A ``local[2]`` SparkSession whose catalog keeps its tables under ``warehouse``; stopped
    afterwards. Fails with what to install when Java is missing."""
    if shutil.which("java") is None:
        raise RuntimeError("Spark needs Java 17 on PATH: `make system-deps` installs Debian's "
                           "openjdk-17-jre-headless (or install a JRE 17 yourself)")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("okr-assets-tests")
    # Python workers, where Spark still needs one, run this interpreter, not python3 from PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = {**SPARK_CONF, "spark.sql.warehouse.dir": str(warehouse)}
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


def ibis_spark(spark: Any) -> Any:
    """Ibis's PySpark backend on ``spark`` (it also prepares Ibis's Spark SQL compiler)."""
    import ibis

    return ibis.pyspark.connect(spark)


def load(con: Any, name: str, frame: pd.DataFrame | Any) -> Any:
    """``frame`` (pandas or Arrow) as the table ``name`` of the session's catalog; its unbound Ibis
    table, as the transforms take their inputs."""
    import ibis

    table = con.create_table(name, frame, overwrite=True)
    return ibis.table(table.schema(), name=name)


def write_table(spark: Any, name: str, expr: Any) -> None:
    """The rows of ``expr`` written once into the table ``name``, as okr_processed's step writes
    its verdicts into a scratch table: Spark's optimizer inlines a view's whole expression into
    every statement that reads it."""
    import ibis

    spark.sql(f"DROP TABLE IF EXISTS {name}")
    spark.sql(str(ibis.to_sql(expr, dialect="pyspark"))).write.saveAsTable(name)


def fetch(spark: Any, expr: Any) -> pd.DataFrame:
    """The rows of ``expr`` run by Spark, as pandas, timestamps as naive UTC (as DuckDB's are)."""
    import ibis

    frame = spark.sql(str(ibis.to_sql(expr, dialect="pyspark"))).toPandas()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame
