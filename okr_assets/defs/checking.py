"""Run a table's Pandera model as a Dagster asset check.

dagster-pandera turns a schema into a Dagster type but has no asset-check support, so this small
adapter validates the stored rows with the same model and reports failures in check metadata:
the column, the rule and example failing values and rows.
"""


import pandas as pd
import pandera.pandas as pa
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue
from pandera.errors import SchemaErrors

from okr_assets.defs.metadata import markdown_table


def pandera_check_result(
    model: type[pa.DataFrameModel], frame: pd.DataFrame, scope: str,
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
) -> AssetCheckResult:
    """Validate ``frame`` lazily (all failures at once) against ``model``."""
    try:
        model.validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases.copy()
        # Row-level (DataFrame-wide) rules report one failure per column of a failing row;
        # name them as row rules and count failing rows instead.
        row_rule = cases["schema_context"].eq("DataFrameSchema") & cases["check"].notna()
        cases["column"] = cases["column"].astype("string").where(~row_rule, "(row rule)").fillna("(table)")
        summary = (
            cases.groupby(["column", "check"], dropna=False)["index"].nunique(dropna=False)
            .rename("failing_rows").reset_index().sort_values("failing_rows", ascending=False)
        )
        row_index = pd.to_numeric(cases["index"], errors="coerce").dropna().astype(int).unique()[:10]
        examples = frame.iloc[[i for i in row_index if 0 <= i < len(frame)]]
        cases = cases.drop_duplicates(["column", "check", "index"])
        first = summary.iloc[0]
        return AssetCheckResult(
            passed=False,
            severity=severity,
            description=f"{len(cases)} failure(s) in {scope}; most frequent: column "
                        f"'{first['column']}' broke rule '{first['check']}'",
            metadata={
                "scope": scope,
                "rows_checked": len(frame),
                "failure_count": len(cases),
                "failures_by_rule": markdown_table(summary),
                "failure_cases": markdown_table(
                    cases[["column", "check", "failure_case", "index"]].astype(str)),
                "example_rows": markdown_table(examples.astype(str), limit=10),
            },
        )
    return AssetCheckResult(
        passed=True, severity=severity,
        metadata={"scope": scope, "rows_checked": len(frame),
                  "rules": MetadataValue.int(_rule_count(model))},
    )


def _rule_count(model: type[pa.DataFrameModel]) -> int:
    schema = model.to_schema()
    return len(schema.checks) + sum(len(c.checks) + (not c.nullable) + bool(c.unique)
                                    for c in schema.columns.values())
