"""The tables' Pandera checks: each table's model over the rows a step is about to publish.

Write, audit, publish: okr_processed, okr_rejects, okr_curated and okr_features are written to
their staging twins first; ``audit_range`` validates the staged range against the table's model
before anything is published, and a failing blocking check keeps the range out of the table
(the asset then fails the run). The checks are check specs of the assets that write the tables,
reported with their materializations: okr_processed_schema, okr_curated_schema and
okr_features_schema are blocking; okr_rejects_schema warns (the table holds bad data by design,
but its lineage and reason codes must be complete).

Each table is checked against its model in ``okr_assets.lib.schemas.TABLE_MODELS``, imported
(with pandas and Pandera) when a check runs, not when the code location loads.
"""

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

from okr_assets.defs.checking import pandera_check_result, passed_check_result
from okr_assets.resources import WarehouseResource
from okr_assets.resources.warehouse import TABLES

if TYPE_CHECKING:
    import pandas as pd

OKR_PROCESSED_SCHEMA = AssetCheckSpec(
    name="okr_processed_schema", asset=AssetKey("okr_processed"), blocking=True,
    description="Types, enums, ranges, unique checkin_id, score = clip(progress), direction consistent "
                "with targets (ProcessedCheckins); checked on the new rows before they are published.")
OKR_REJECTS_SCHEMA = AssetCheckSpec(
    name="okr_rejects_schema", asset=AssetKey("okr_rejects"), blocking=False,
    description="Every reject has a known reason code, a message and lineage (RejectedCheckins).")
OKR_CURATED_SCHEMA = AssetCheckSpec(
    name="okr_curated_schema", asset=AssetKey("okr_curated"), blocking=True,
    description="One row per (key result, cycle); scores in range; final score only for closed cycles "
                "(CuratedKeyResults); checked on the new rows before they are published.")


def contract_rules_result(
    warehouse: WarehouseResource, spec: AssetCheckSpec, start: dt.date, end: dt.date,
) -> AssetCheckResult | None:
    """The contract's rules on typed values (``okr_assets.lib.rules.PROCESSED_RULES``, the ones the
    routing rejects rows by) on the staged okr_processed rows of ``[start, end)``, counted in the
    engine: a failing result naming each broken rule with its failing rows, a few check-in ids and
    example rows; None when every row keeps every rule."""
    import ibis
    import pandas as pd

    from okr_assets.defs.metadata import markdown_table
    from okr_assets.defs.partitions import FIRST_PARTITION
    from okr_assets.lib.rules import PROCESSED_RULES

    staged = warehouse.table("okr_processed", staged=True)
    rows = staged.filter((staged.checkin_date >= ibis.date(start)) & (staged.checkin_date < ibis.date(end)))
    broken = [rule.broken(rows, FIRST_PARTITION).fill_null(False) for rule in PROCESSED_RULES]
    sums = warehouse.fetch(rows.aggregate(
        n=rows.count(), **{f"rule_{i}": b.ifelse(1, 0).sum().coalesce(0) for i, b in enumerate(broken)})).iloc[0]
    counts = {k: int(v) for k, v in sums.items()}  # an engine's big-integer sums can arrive as text
    failing = [(i, rule, counts[f"rule_{i}"]) for i, rule in enumerate(PROCESSED_RULES) if counts[f"rule_{i}"]]
    if not failing:
        return None
    summary = pd.DataFrame([{"column": "(row rule)", "check": f"{rule.reason.value}: {rule.summary}",
                             "failing_rows": n} for _, rule, n in failing]).sort_values("failing_rows", ascending=False)
    any_broken = ibis.or_(*(broken[i] for i, _, _ in failing))
    examples = warehouse.fetch(rows.filter(any_broken).order_by("checkin_id").limit(20))
    cases = pd.DataFrame([{"column": "(row rule)", "check": rule.reason.value, "checkin_id": cid,
                           "failure_case": "(whole row)"}
                          for i, rule, _ in failing
                          for cid in warehouse.fetch(rows.filter(broken[i]).select("checkin_id")
                                                     .order_by("checkin_id").limit(20))["checkin_id"]])
    shown = examples.head(5).astype(str).set_index("checkin_id", drop=False).T
    first = summary.iloc[0]
    scope = f"new rows of okr_processed {start} .. {end - dt.timedelta(days=1)}"
    return AssetCheckResult(
        check_name=spec.name, asset_key=spec.asset_key, passed=False,
        severity=AssetCheckSeverity.ERROR if spec.blocking else AssetCheckSeverity.WARN,
        description=f"{int(summary['failing_rows'].sum())} failure(s) in {scope}; most frequent: rule "
                    f"'{first['check']}'",
        metadata={"scope": scope, "rows_checked": counts["n"], "failure_count": len(cases),
                  "failures_by_rule": markdown_table(summary),
                  "failure_cases": markdown_table(cases.astype(str)),
                  "example_rows": markdown_table(shown.reset_index(names="field"), limit=len(shown))})


def audit_range(
    warehouse: WarehouseResource, spec: AssetCheckSpec, table: str, column: str, start: dt.date, end: dt.date,
) -> AssetCheckResult:
    """Validate the staged rows of ``table`` with ``start <= column < end`` against the table's
    Pandera model, for the check ``spec`` (okr_processed's rows first against the contract's rules,
    in the engine: ``contract_rules_result``). A range is read and validated a quarter at a time, so a
    backfill over years is checked in bounded memory; the model's unique columns are then checked
    across the whole range in SQL. The first failing quarter is reported."""
    from okr_assets.lib.memory import free_cycles, older_objects_frozen
    from okr_assets.lib.pipelining import overlapped
    from okr_assets.lib.routing import month_windows
    from okr_assets.lib.schemas import TABLE_MODELS

    if table == "okr_processed" and (broken := contract_rules_result(warehouse, spec, start, end)) is not None:
        return broken
    model = TABLE_MODELS[table]
    severity = AssetCheckSeverity.ERROR if spec.blocking else AssetCheckSeverity.WARN
    named = {"check_name": spec.name, "asset_key": spec.asset_key}
    scope = f"new rows of {table} {start} .. {end - dt.timedelta(days=1)}"

    def quarters() -> "Iterator[tuple[dt.date, dt.date, pd.DataFrame]]":
        # Not monthly: each Pandera call has a fixed cost.
        for lo, hi in month_windows(start, end, months=3):
            yield lo, hi, warehouse.read_range(table, column, lo, hi, text_storage="pyarrow", staged=True)

    checked = 0
    # The next quarter is read (the database, without the GIL) while this one is validated.
    with older_objects_frozen(), overlapped(quarters(), name=f"{table}-check-reader") as read:
        for lo, hi, frame in read:
            if frame.empty and (checked or hi < end):
                continue
            label = scope if (lo, hi) == (start, end) else f"{table} {lo} .. {hi - dt.timedelta(days=1)} (of {scope})"
            result = pandera_check_result(model, frame, label, severity, **named)
            if not result.passed:
                return result
            checked += len(frame)
            del frame
            free_cycles()  # the quarter's coerced columns (see okr_assets.lib.memory)
    for key, spec_column in model.to_schema().columns.items():
        if spec_column.unique:
            shared = warehouse.rows_sharing(table, key, column, start, end, staged=True)
            if not shared.empty:
                return pandera_check_result(model, shared, f"{scope}: rows sharing a {key}", severity, **named)
    return passed_check_result(model, scope, checked, severity, **named)


def check_table(warehouse: WarehouseResource, table: str,
                severity: AssetCheckSeverity = AssetCheckSeverity.ERROR) -> AssetCheckResult:
    """Validate the whole of an unpartitioned table against its Pandera model."""
    from okr_assets.lib.schemas import TABLE_MODELS

    warehouse.setup()
    frame = warehouse.query(f"SELECT * FROM {TABLES[table].qualified}")
    return pandera_check_result(TABLE_MODELS[table], frame, f"all of {table}", severity)
