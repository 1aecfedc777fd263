"""Run a table's Pandera model as a Dagster asset check.

dagster-pandera turns a schema into a Dagster type but has no asset-check support, so this small
adapter reports a model's failures in check metadata: the column, the rule, failing values by
the table's key and example failing rows. ``engine_check_result`` checks rows in the warehouse
(``okr_assets.lib.table_checks``: the tables the steps write there); ``pandera_check_result``
validates a DataFrame with Pandera itself (the small ML tables). pandas and Pandera are imported
when a check runs, not when the code location loads.
"""

from typing import TYPE_CHECKING

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue

from okr_assets.defs.metadata import markdown_table

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import ibis
    import pandas as pd
    import pandera.pandas as pa

    from okr_assets.lib.table_checks import Predicate


def pandera_check_result(
    model: "type[pa.DataFrameModel]", frame: "pd.DataFrame", scope: str,
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR, check_name: str | None = None,
    asset_key: AssetKey | None = None,
) -> AssetCheckResult:
    """Validate ``frame`` lazily (all failures at once) against ``model``. The frame is validated
    in place (Pandera coerces its columns): pass one you no longer need as it was. ``check_name``
    and ``asset_key`` name the check when an asset reports it (a check spec)."""
    import pandas as pd
    from pandera.errors import SchemaErrors

    given = frame.copy(deep=False)  # the columns as they came, to show failing rows as stored
    try:
        validate_in_place(model, frame)
    except SchemaErrors as err:
        frame = given
        cases = err.failure_cases.copy()
        # Row-level (DataFrame-wide) rules report one failure per column of a failing row;
        # name them as row rules and count failing rows instead.
        # DataFrame-level failures without a row (a missing column) concern the table.
        frame_rule = cases["schema_context"].eq("DataFrameSchema") & cases["check"].notna()
        row_rule = frame_rule & cases["index"].notna()
        cases["column"] = (cases["column"].astype("string").where(~row_rule, "(row rule)")
                           .where(~(frame_rule & ~row_rule), "(table)").fillna("(table)"))
        summary = (
            cases.groupby(["column", "check"], dropna=False)["index"].nunique(dropna=False)
            .rename("failing_rows").reset_index().sort_values("failing_rows", ascending=False)
        )
        key, ids = _row_names(model, frame)
        cases = cases.drop_duplicates(["column", "check", "index"])
        # A row rule's failure_case is whichever column pandera reported first: say "whole row".
        cases["failure_case"] = cases["failure_case"].astype(str).where(~cases["column"].eq("(row rule)"),
                                                                          "(whole row)")
        labels = pd.to_numeric(cases["index"], errors="coerce").astype("Int64")  # None: table-level failure
        cases[key] = labels.map(ids).fillna("(table)")
        first = summary.iloc[0]
        return AssetCheckResult(
            check_name=check_name, asset_key=asset_key,
            passed=False,
            severity=severity,
            description=f"{len(cases)} failure(s) in {scope}; most frequent: column "
                        f"'{first['column']}' broke rule '{first['check']}'",
            metadata={
                "scope": scope,
                "rows_checked": len(frame),
                "failure_count": len(cases),
                "failures_by_rule": markdown_table(summary),
                "failure_cases": markdown_table(cases[["column", "check", key, "failure_case"]].astype(str)),
                "example_rows": _example_rows(frame, ids, labels),
            },
        )
    return passed_check_result(model, scope, len(frame), severity, check_name=check_name, asset_key=asset_key)


def engine_check_result(
    fetch: "Callable[[ibis.Expr, Mapping[str, ibis.Table]], pd.DataFrame]", model: "type[pa.DataFrameModel]",
    rows: "ibis.Table", scope: str, key: "Sequence[str]", severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
    check_name: str | None = None, asset_key: AssetKey | None = None,
    extra: "Callable[[ibis.Table], Sequence[Predicate]]" = lambda _: (),
) -> AssetCheckResult:
    """Check ``rows`` (an expression ``fetch(expression, inputs)`` runs in the warehouse) against
    ``model`` and the rules ``extra`` gives, where they are stored; failures are named by the
    ``key`` columns. The metadata has the shape of ``pandera_check_result``'s."""
    from okr_assets.lib.table_checks import violations

    found = violations(fetch, model, rows, key, extra)
    if found.passed:
        return passed_check_result(model, scope, found.rows_checked, severity, check_name=check_name,
                                   asset_key=asset_key)
    by_rule, cases, examples = found.by_rule, found.cases, found.examples
    first = by_rule.iloc[0]
    label = "/".join(key)
    shown = examples.astype(str)
    shown.index = ["/".join(map(str, r)) for r in examples[list(key)].itertuples(index=False)]
    return AssetCheckResult(
        check_name=check_name, asset_key=asset_key, passed=False, severity=severity,
        description=f"{int(by_rule['failing_rows'].sum())} failure(s) in {scope}; most frequent: column "
                    f"'{first['column']}' broke rule '{first['check']}'",
        metadata={
            "scope": scope,
            "rows_checked": found.rows_checked,
            "failure_count": len(cases),
            "failures_by_rule": markdown_table(by_rule),
            "failure_cases": markdown_table(cases[["column", "check", label, "failure_case"]].astype(str)),
            "example_rows": markdown_table(shown.T.reset_index(names="field"), limit=len(shown.columns)),
        },
    )


def validate_in_place(model: "type[pa.DataFrameModel]", frame: "pd.DataFrame") -> None:
    """``model.validate(frame, lazy=True, inplace=True)``, raising ``SchemaErrors``.

    In place: no copy of the frame (half of Pandera's cost on our tables). And without the
    reference cycle Pandera leaves behind: it caches its accessor on the validated frame (frame ->
    ``frame.pandera`` -> frame), so the frame outlived its last use until a full garbage
    collection, which allocation counts rarely trigger; a check reading a quarter at a time
    stacked each quarter's ~250 MB on the last. Dropping the cached accessor frees the frame as
    soon as it is unused."""
    try:
        model.validate(frame, lazy=True, inplace=True)
    finally:
        frame.__dict__.pop("pandera", None)


def passed_check_result(
    model: "type[pa.DataFrameModel]", scope: str, rows_checked: int,
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR, check_name: str | None = None,
    asset_key: AssetKey | None = None, **metadata: object,
) -> AssetCheckResult:
    """A passing result: its scope, the rows checked and how many rules the model has."""
    return AssetCheckResult(
        check_name=check_name, asset_key=asset_key, passed=True, severity=severity,
        metadata={"scope": scope, "rows_checked": rows_checked, **metadata,
                  "rules": MetadataValue.int(_rule_count(model))},
    )


def _row_names(model: "type[pa.DataFrameModel]", frame: "pd.DataFrame") -> "tuple[str, pd.Series]":
    """Name failing rows by the model's unique key column (e.g. checkin_id), which a user can look
    up in the table, rather than by their position in the checked frame."""
    import pandas as pd

    schema = model.to_schema()
    key = next((n for n, c in schema.columns.items() if c.unique and n in frame.columns), None)
    if key is None:
        return "row", pd.Series([f"row {i}" for i in range(len(frame))], index=frame.index)
    return key, frame[key].astype(str)


def _example_rows(frame: "pd.DataFrame", ids: "pd.Series", labels: "pd.Series", limit: int = 5) -> MetadataValue:
    """Up to ``limit`` failing rows, one column each and one line per field: a table row with 30
    fields side by side does not fit a dialog."""
    failing = [label for label in labels.dropna().unique() if label in frame.index][:limit]
    if not failing:
        return MetadataValue.md("_no single rows: the failures are about the table as a whole_")
    shown = frame.loc[failing].astype(str).T
    shown.columns = [ids[label] for label in failing]
    return markdown_table(shown.reset_index(names="field"), limit=len(shown))


def _rule_count(model: "type[pa.DataFrameModel]") -> int:
    schema = model.to_schema()
    return len(schema.checks) + sum(len(c.checks) + (not c.nullable) + bool(c.unique)
                                    for c in schema.columns.values())
