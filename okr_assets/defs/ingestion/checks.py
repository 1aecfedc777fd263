"""Asset checks on okr_raw, from its Pandera model (imported when the check runs)."""


from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, asset_check

from okr_assets.defs.checking import pandera_check_result
from okr_assets.resources import WarehouseResource


@asset_check(asset=AssetKey("okr_raw"), blocking=True, name="okr_raw_schema",
             description="Rows landed by the latest materialization match the RawCheckins model "
                         "(lineage complete, sources known, keys unique).")
def okr_raw_schema(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    from okr_assets.lib.schemas import RawCheckins

    warehouse.setup()
    latest = context.instance.get_latest_materialization_event(AssetKey("okr_raw"))
    run_id = latest.run_id if latest else context.run.run_id
    frame = warehouse.query("SELECT * FROM okr_raw.okr_raw WHERE run_id = ? ORDER BY raw_id", [run_id])
    return pandera_check_result(RawCheckins, frame, scope=f"rows landed by run {run_id[:8]}")
