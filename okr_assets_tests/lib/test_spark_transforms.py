"""The transforms' expressions run on Spark and give DuckDB's rows.

Landing's partition routing of awkward timestamps; and the same generated check-ins (many
row-level reject reasons, newer valid and invalid versions, several cycles) through the
validation, the curation and the point-in-time features, on a local Spark session and on the
in-memory DuckDB the model's code uses: the tables must agree row for row (floats to 1e-9).
The validation runs as okr_processed's step runs it: the verdicts written once into a table,
the winners decided from that table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest

from okr_assets.lib import validation
from okr_assets.lib.curation import curate, curate_frame
from okr_assets.lib.features import CHECKIN_COLUMNS as FEATURE_INPUTS
from okr_assets.lib.features import LABEL_COLUMNS, build_features, features
from okr_assets.lib.generator import GeneratorConfig, generate
from okr_assets_tests.spark import fetch, ibis_spark, load, spark_session, write_table

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)
FIRST_PARTITION = dt.date(2024, 1, 1)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with spark_session(tmp_path_factory.mktemp("spark-warehouse")) as session:
        yield session


@pytest.fixture(scope="module")
def landed() -> pd.DataFrame:
    """Landed rows in okr_raw's shape: generated exports with bad rows, and a second landing of
    some check-ins (newer versions, one of them invalid)."""
    data = generate(GeneratorConfig(seed=21, teams=2, cycles=3, bad_share=0.05, as_of=NOW))
    rows = pd.concat(data.files.values(), ignore_index=True).astype("string")
    good = rows[~rows["checkin_id"].str.contains("-bad-")]
    newer = good.iloc[::40].assign(value=lambda f: (f["value"].astype(float) + 1.5).astype(str),
                                   comment="re-exported")
    newer.iloc[0, newer.columns.get_loc("confidence")] = "11"  # an invalid newer version: rejected
    rows = pd.concat([rows, newer], ignore_index=True)
    rows = rows.assign(raw_id=range(1, len(rows) + 1), source="file", source_ref=[f"f.csv:{i + 2}" for i in rows.index],
                       ingested_at=pd.Timestamp(NOW), partition_date=pd.Timestamp(NOW.date()))
    return validation._as_raw(rows, True).rename(columns={"_mine_row": "_mine"})


def _utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC microseconds (engines differ in zone and unit, not in the instant)."""
    values = pd.to_datetime(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[us]")


def _same(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    assert len(expected), "nothing to compare"
    assert sorted(actual.columns) == sorted(expected.columns)
    actual = actual.sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    assert len(actual) == len(expected)
    for column in expected.columns:
        a, e = actual[column], expected[column]
        if pd.api.types.is_numeric_dtype(e) and not pd.api.types.is_bool_dtype(e):
            assert np.allclose(a.astype(float), e.astype(float), rtol=1e-9, atol=1e-12, equal_nan=True), column
        elif pd.api.types.is_datetime64_any_dtype(e):
            assert _utc(a).equals(_utc(e)), column
        else:
            def values(s: pd.Series) -> list[object]:
                return s.astype(object).where(s.notna(), None).tolist()

            assert values(a) == values(e), column


def test_the_validation_gives_the_same_verdicts_on_spark(spark: Any, landed: pd.DataFrame) -> None:
    con = ibis_spark(spark)
    candidates = load(con, validation.CANDIDATES, landed)
    raw_schema = ibis.schema({c: t for c, t in candidates.schema().items() if c != "_mine"})
    write_table(spark, "okr_judged_scratch", validation.range_verdicts(raw_schema, FIRST_PARTITION))
    judged = ibis.table(con.table("okr_judged_scratch").schema(), name="okr_judged_scratch")
    on_spark = fetch(spark, validation.kept(validation.decide(judged)))

    expected = validation.validate_versions(landed.drop(columns="_mine"), FIRST_PARTITION)
    accepted = on_spark[on_spark["outcome"] == validation.ACCEPTED][list(validation.PROCESSED_COLUMNS)]
    _same(accepted, expected.accepted, ["raw_id"])
    rejected = on_spark[on_spark["outcome"] == validation.REJECTED]
    assert rejected["reason"].nunique() >= 8  # the generator's bad rows break many rules
    for column in ("reason", "message"):
        assert (rejected.set_index("raw_id")[column].sort_index().tolist()
                == expected.rejects.set_index("raw_id")[column].sort_index().tolist()), column
    superseded = on_spark[on_spark["outcome"].isin(validation.SUPERSESSION_KINDS)]
    assert sorted(superseded["raw_id"]) == sorted(expected.superseded["raw_id"].astype(int))
    assert len(superseded) and int(on_spark["over_valid"].sum()) == expected.rejected_over_valid == 1


def test_curation_and_features_give_the_same_rows_on_spark(spark: Any, landed: pd.DataFrame) -> None:
    con = ibis_spark(spark)
    processed = validation.validate_versions(landed.drop(columns="_mine"), FIRST_PARTITION).accepted
    table = load(con, "okr_processed", processed)

    curated = fetch(spark, curate(table, NOW.date()))
    expected_curated = curate_frame(processed, NOW.date())
    _same(curated, expected_curated, ["key_result_id", "cycle_id"])
    assert curated["cycle_closed"].any() and not curated["cycle_closed"].all()

    labels = load(con, "okr_curated", expected_curated[list(LABEL_COLUMNS)])
    on_spark = fetch(spark, features(table.select(*FEATURE_INPUTS), labels, NOW))
    _same(on_spark, build_features(processed, expected_curated, NOW), ["key_result_id", "cycle_id", "week"])


def test_landing_routes_rows_to_the_same_partitions_on_spark(spark: Any) -> None:
    texts = ["2026-05-01T10:00:00Z", "2026-05-01T23:30:00-02:00", "2024-02-29T00:00:00+14:00", "2026-05-01t10:00:00z",
             " 2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "garbage", None, "2023-01-01T00:00:00Z",
             "2026-11-23T12:04:00Z", "2026-11-23T12:06:00Z", "2027-01-01T00:00:00Z"]
    frame = pd.DataFrame({"checkin_at": pd.array(texts, dtype="string[pyarrow]"), "ingested_at": pd.Timestamp(NOW),
                          "_row": range(len(texts))})
    table = load(ibis_spark(spark), "okr_incoming", frame)
    on_spark = fetch(spark, validation.routed(table, FIRST_PARTITION).select("_row", "partition_date"))
    days = on_spark.sort_values("_row")["partition_date"].astype(str).tolist()
    expected = validation.partition_dates(frame, FIRST_PARTITION).dt.strftime("%Y-%m-%d").tolist()
    assert days == expected
    # a check-in day where it parses (in UTC), the ingestion day where it does not or is unusable
    assert days[:4] == ["2026-05-01", "2026-05-02", "2024-02-28", "2026-05-01"]
    assert set(days[4:]) == {NOW.date().isoformat()}


def test_a_tables_checks_find_the_same_failures_on_spark(spark: Any, landed: pd.DataFrame) -> None:
    """okr_processed's Pandera model checked in Spark: the same counts, failure cases by key and
    example rows as in DuckDB, for rows that break a column check, a uniqueness and a row rule."""
    from okr_assets.lib.table_checks import on_frame

    processed = validation.validate_versions(landed.drop(columns="_mine"), FIRST_PARTITION).accepted
    assert _violations_on_spark(spark, processed).passed

    broken = processed.copy()
    broken.loc[broken.index[0], "confidence"] = 11  # outside 0..10
    broken.loc[broken.index[1], "checkin_id"] = broken.loc[broken.index[2], "checkin_id"]  # not unique
    row = broken.index[3]
    broken.loc[row, "score"] = 0.5 if broken.loc[row, "progress"] != 0.5 else 0.4  # score is not clip(progress)
    expected = on_frame("okr_processed", broken)
    assert set(expected.by_rule["check"]) == {"field_uniqueness", "less_than_or_equal_to(10)",
                                              "score_is_clipped_progress"}
    found = _violations_on_spark(spark, broken)
    pd.testing.assert_frame_equal(found.by_rule, expected.by_rule)
    assert found.rows_checked == expected.rows_checked
    _same(found.cases, expected.cases, ["column", "check", "checkin_id"])
    _same(found.examples, expected.examples, ["raw_id"])


def _violations_on_spark(spark: Any, frame: pd.DataFrame) -> Any:
    from okr_assets.lib.schemas import CHECK_KEYS, TABLE_MODELS, sql_columns
    from okr_assets.lib.table_checks import CHECKED, violations

    model = TABLE_MODELS["okr_processed"]
    frame = frame.copy()
    for column, sql in sql_columns(model):
        if sql == "DATE":  # pandas carries dates as midnight timestamps; the table holds dates
            frame[column] = pd.to_datetime(frame[column]).dt.date
    rows = load(ibis_spark(spark), CHECKED, frame)
    return violations(lambda expr, inputs: fetch(spark, expr), model, rows, CHECK_KEYS["okr_processed"])
