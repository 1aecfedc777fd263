"""The tables' Pandera checks: each table's model over the rows a step is about to publish.

Write, audit, publish: okr_processed, okr_rejects, okr_curated and okr_features are written to
their staging twins first; ``audit_range`` validates the staged range against the table's model
before anything is published, and a failing blocking check keeps the range out of the table
(the asset then fails the run). The checks are check specs of the assets that write the tables,
reported with their materializations: okr_processed_schema, okr_curated_schema and
okr_features_schema are blocking; okr_rejects_schema warns (the table holds bad data by design,
but its lineage and reason codes must be complete).

Each table is checked against its model in ``okr_assets.lib.schemas.TABLE_MODELS``, in the
warehouse engine; the model (with pandas and Pandera) is imported when a check runs, not when
the code location loads.
"""

import datetime as dt

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

from okr_assets.defs.checking import pandera_check_result
from okr_assets.resources import WarehouseResource
from okr_assets.resources.warehouse import TABLES

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


def audit_range(
    warehouse: WarehouseResource, spec: AssetCheckSpec, table: str, column: str, start: dt.date, end: dt.date,
) -> AssetCheckResult:
    """Check the staged rows of ``table`` with ``start <= column < end`` against the table's
    Pandera model, in the warehouse (``okr_assets.lib.table_checks``): one scan of the range,
    whatever its size; only a failure's bounded report is read back. okr_processed's rows are also
    held to the contract's rules on typed values (``okr_assets.lib.rules.PROCESSED_RULES``, the
    rules the routing rejects rows by), so no row the routing should have rejected is published."""
    import ibis

    from okr_assets.defs.checking import engine_check_result
    from okr_assets.defs.partitions import FIRST_PARTITION
    from okr_assets.lib.rules import PROCESSED_RULES
    from okr_assets.lib.schemas import CHECK_KEYS, TABLE_MODELS
    from okr_assets.lib.table_checks import ROW_RULE, Predicate

    staged = warehouse.table(table, staged=True)
    rows = staged.filter((staged[column] >= ibis.date(start)) & (staged[column] < ibis.date(end)))

    def contract(checked: ibis.Table) -> list[Predicate]:
        return [Predicate(ROW_RULE, f"{rule.reason.value}: {rule.summary}", ~rule.broken(checked, FIRST_PARTITION))
                for rule in PROCESSED_RULES] if table == "okr_processed" else []

    return engine_check_result(
        warehouse.fetch, TABLE_MODELS[table], rows, f"new rows of {table} {start} .. {end - dt.timedelta(days=1)}",
        CHECK_KEYS[table], AssetCheckSeverity.ERROR if spec.blocking else AssetCheckSeverity.WARN,
        check_name=spec.name, asset_key=spec.asset_key, extra=contract)


def check_table(warehouse: WarehouseResource, table: str,
                severity: AssetCheckSeverity = AssetCheckSeverity.ERROR) -> AssetCheckResult:
    """Validate the whole of an unpartitioned table against its Pandera model."""
    from okr_assets.lib.schemas import TABLE_MODELS

    warehouse.setup()
    frame = warehouse.query(f"SELECT * FROM {TABLES[table].qualified}")
    return pandera_check_result(TABLE_MODELS[table], frame, f"all of {table}", severity)
