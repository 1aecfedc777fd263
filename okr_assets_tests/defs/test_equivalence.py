"""The tables the pipeline builds from fixed inputs equal the fixture's expected tables, on each
engine (see okr_assets_tests.equivalence for what the inputs cover and how the tables were made)."""

import os
from pathlib import Path

import pandas as pd
import pytest
from dagster import materialize

from okr_assets.lib import features
from okr_assets.resources import KafkaResource
from okr_assets_tests import equivalence
from okr_assets_tests.conftest import ON_EVERY_ENGINE
from okr_assets_tests.defs.test_assets import ASSETS, land
from okr_assets_tests.defs.test_kafka import produce
from okr_assets_tests.defs.test_ml import _range

FLOAT_TOLERANCE = 1e-9  # relative: the same arithmetic in another engine may round differently


def _refresh(instance, resources: dict) -> None:
    """okr_processed/okr_rejects over every day that landed, then okr_curated and okr_features
    over every quarter, as a backfill from the UI would."""
    warehouse = resources["warehouse"]
    bounds = warehouse.query("SELECT min(partition_date) AS lo, max(partition_date) AS hi FROM okr_raw.okr_raw")
    days = _range(*(bounds[c][0].strftime("%Y-%m-%d") for c in ("lo", "hi")))
    assert materialize(ASSETS, selection=["okr_processed", "okr_rejects"], instance=instance,
                       resources=resources, tags=days).success
    quarters = warehouse.query("SELECT min(cycle_start) AS lo, max(cycle_start) AS hi FROM okr_processed.okr_processed")
    lo, hi = (pd.Timestamp(quarters[c][0]).to_period("Q").start_time.strftime("%Y-%m-%d") for c in ("lo", "hi"))
    for selection in (["okr_curated"], ["okr_features"]):
        assert materialize(ASSETS, selection=selection, instance=instance, resources=resources,
                           tags=_range(lo, hi)).success


def _build(okr_home: Path, resources: dict, instance) -> dict[str, pd.DataFrame]:
    first, second, messages = equivalence.read_inputs()
    landing = okr_home / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    for name, data in first.items():
        (landing / name).write_bytes(data)
    land(instance, resources)
    _refresh(instance, resources)

    # Round 2 after round 1 was processed: re-exports, late check-ins, broken files, Kafka.
    for name, data in second.items():
        (landing / name).write_bytes(data)
    land(instance, resources)
    kafka: KafkaResource = resources["kafka"]
    produce(kafka, messages, partition=0)
    config = {"kafka_ranges": [{"topic": kafka.ingest_topic, "partition": 0, "start": 0, "end": len(messages)}]}
    assert materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources,
                       run_config={"ops": {"okr_raw": {"config": config}}}).success
    _refresh(instance, resources)

    warehouse = resources["warehouse"]
    schemas = {"okr_processed": "okr_processed", "okr_rejects": "okr_processed",
               "okr_curated": "okr_curated", "okr_features": "okr_ml"}
    return {table: equivalence.normalised(table, warehouse.query(f"SELECT * FROM {schemas[table]}.{table}"),
                                          kafka.ingest_topic)
            for table in equivalence.TABLES}


def _assert_same(table: str, actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns), f"{table}: columns differ"
    keys = equivalence.SORT_KEYS[table]
    missing = expected.merge(actual[keys], on=keys, how="left", indicator=True).query("_merge == 'left_only'")
    extra = actual.merge(expected[keys], on=keys, how="left", indicator=True).query("_merge == 'left_only'")
    assert missing.empty and extra.empty, (
        f"{table}: {len(missing)} expected row(s) missing, e.g.\n{missing[keys].head(5)}\n"
        f"{len(extra)} unexpected row(s), e.g.\n{extra[keys].head(5)}")
    assert len(actual) == len(expected), f"{table}: {len(actual)} rows, expected {len(expected)}"
    for col in expected.columns:
        want, got = expected[col], actual[col]
        numeric_want, numeric_got = pd.to_numeric(want, errors="coerce"), pd.to_numeric(got, errors="coerce")
        if want.notna().any() and numeric_want.notna().sum() == want.notna().sum():  # a numeric column
            close = ((numeric_want - numeric_got).abs() <= FLOAT_TOLERANCE * numeric_want.abs().clip(lower=1)) | (
                numeric_want.isna() & numeric_got.isna())
        else:
            close = (want == got) | (want.isna() & got.isna())
        bad = ~close.fillna(False)
        assert not bad.any(), (
            f"{table}.{col}: {int(bad.sum())} value(s) differ, e.g.\n"
            + pd.DataFrame({**{k: expected[k][bad] for k in keys}, "expected": want[bad], "actual": got[bad]})
            .head(5).to_string())


@ON_EVERY_ENGINE
def test_the_pipeline_builds_the_expected_tables(okr_home: Path, resources: dict, instance,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # okr_features in statements of a few cycles each, as a large range runs: batching whole
    # cycles must not change a row.
    monkeypatch.setattr(features, "BATCH_CHECKINS", 40)
    tables = _build(okr_home, resources, instance)
    if os.environ.get("OKR_WRITE_EQUIVALENCE") == "1":
        equivalence.write_expected(tables)
    reasons = set(tables["okr_rejects"]["reason"])
    # What the fixture is for: every kind of input it claims to cover is in it.
    assert reasons >= {"unreadable_file", "malformed_row", "message_not_json", "message_not_utf8",
                       "message_not_object", "unknown_schema_version", "invalid_envelope",
                       "unstorable_character", "missing_required", "unparseable_number", "unparseable_date",
                       "unknown_enum", "invalid_cycle", "start_equals_target", "direction_contradiction",
                       "confidence_out_of_range", "weight_out_of_range", "checkin_in_future",
                       "before_first_partition", "outside_cycle", "progress_out_of_range"}, reasons
    processed = tables["okr_processed"]
    assert processed["checkin_id"].str.startswith("late-").sum() == 10
    assert (processed["comment"] == "re-exported").sum() >= 11  # one was superseded again from Kafka
    assert (processed["comment"] == "broken re-export").sum() == 0
    for table in equivalence.TABLES:
        _assert_same(table, equivalence.as_stored(tables[table]), equivalence.read_expected(table))
