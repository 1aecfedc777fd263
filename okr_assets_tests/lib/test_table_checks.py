"""The tables' Pandera models checked in the engine: every kind of rule is evaluated there and
fails when broken, with a report bounded by the key, whatever the number of rows."""

import pandas as pd
import pytest

from okr_assets.lib.schemas import CHECK_KEYS, TABLE_MODELS, row_rules
from okr_assets.lib.table_checks import CASES_PER_RULE, EXAMPLE_ROWS, on_frame, rules
from okr_assets.lib.validation import validate_checkins
from okr_assets_tests.lib.test_validation import FIRST, frame


def assert_valid(table: str, rows: pd.DataFrame) -> None:
    """``rows`` keep every rule of ``table``'s model: its types and column rules (Pandera on the
    frame) and its row rules, as the warehouse checks them (in the engine; a fifth of a second, so
    only for models that have row rules)."""
    TABLE_MODELS[table].validate(rows.copy())
    if not row_rules(TABLE_MODELS[table]):
        return
    found = on_frame(table, rows)
    assert found.passed, f"{table}: {found.by_rule.to_dict('records')}\n{found.cases.head(10).to_dict('records')}"


def _processed(n: int = 3) -> pd.DataFrame:
    rows = [{"checkin_id": f"c{i}", "key_result_id": f"kr{i}", "checkin_at": "2025-07-10T00:00:00Z"}
            for i in range(n)]
    return validate_checkins(frame(*rows), FIRST).accepted


def test_every_model_checked_in_the_engine_has_a_predicate_for_each_of_its_rules() -> None:
    from okr_assets.resources import WarehouseResource

    warehouse = WarehouseResource(url="duckdb:///unused.duckdb")  # tables as the warehouse types them; no connection
    for table in CHECK_KEYS:
        model = TABLE_MODELS[table]
        checked = rules(model, warehouse.table(table))
        schema = model.to_schema()
        expected = sum(len(c.checks) + (not c.nullable) + bool(c.unique) for c in schema.columns.values())
        assert len([r for r in checked if r.column != "(row rule)"]) == expected, table
        assert set(CHECK_KEYS[table]) <= set(schema.columns), table


def test_valid_rows_pass() -> None:
    assert on_frame("okr_processed", _processed()).rows_checked == 3
    assert_valid("okr_processed", _processed())


@pytest.mark.parametrize(("column", "value", "check"), [
    ("weight", 1.5, "less_than_or_equal_to(1)"),  # a built-in check
    ("okr_kind", "stretch", "isin(('committed', 'aspirational'))"),
    ("org_id", None, "not_nullable"),
    ("checkin_id", "c0", "field_uniqueness"),
    ("score", 0.123, "score_is_clipped_progress"),  # a row rule
])
def test_each_kind_of_rule_fails_when_broken(column: str, value: object, check: str) -> None:
    rows = _processed()
    rows.loc[1, column] = value
    found = on_frame("okr_processed", rows)
    assert not found.passed
    assert check in set(found.by_rule["check"]), found.by_rule
    failing = found.cases[found.cases["check"] == check]
    if check == "field_uniqueness":  # both rows sharing the id fail, named by it
        assert list(failing["checkin_id"]) == ["c0", "c0"]
    else:
        assert list(failing["checkin_id"]) == ["c1"] and list(found.examples["checkin_id"]) == ["c1"]


def test_a_failure_report_is_bounded_however_many_rows_fail() -> None:
    rows = _processed(60).assign(okr_kind="stretch")
    found = on_frame("okr_processed", rows)
    [count] = found.by_rule.loc[found.by_rule["check"].str.startswith("isin"), "failing_rows"]
    assert count == 60
    assert len(found.cases) == CASES_PER_RULE and len(found.examples) == EXAMPLE_ROWS


def test_a_rule_on_a_null_value_is_broken_unless_the_column_may_be_null() -> None:
    rows = _processed()
    rows["confidence"] = rows["confidence"].astype("Int64")
    rows.loc[0, "confidence"] = pd.NA  # nullable: its range checks ignore a null
    assert on_frame("okr_processed", rows).passed
    rows.loc[0, "start_value"] = None  # a row rule comparing a null does not hold
    found = on_frame("okr_processed", rows)
    assert {"not_nullable", "start_differs_from_target"} <= set(found.by_rule["check"])
