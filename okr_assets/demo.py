"""``make demo``: the whole pipeline headless, then a summary. It uses the configured warehouse
(``OKR_WAREHOUSE_URL``, resolved as a run resolves it; the embedded DuckDB file when unset).

Runs are recorded in the Dagster instance under ``$DAGSTER_HOME`` (default ``$OKR_HOME/dagster``)
so they appear in the UI started later by ``make run``.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from okr_assets import settings
from okr_assets.instance import ensure_dagster_home

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

    from okr_assets.resources import WarehouseResource


def run_demo(seed: int, teams: int, cycles: int, bad_share: float) -> int:
    warnings.filterwarnings("ignore", category=Warning, module="dagster")
    os.environ["DAGSTER_HOME"] = str(ensure_dagster_home().parent)
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):  # headless demo: no broker to notify
        os.environ.setdefault("OKR_PUBLISH_UPDATES", "false")
    from dagster import DagsterInstance

    from okr_assets.definitions import defs
    from okr_assets.lib.generator import GeneratorConfig, generate, write_dataset
    from okr_assets.resources import open_resources

    landing = settings.landing_dir()
    from okr_assets.cli import default_as_of

    config = GeneratorConfig(seed=seed, teams=teams, cycles=cycles, bad_share=bad_share, as_of=default_as_of())
    paths = write_dataset(generate(config), landing, seed=seed)
    print(f"generated {len(paths)} file(s) into {landing}")

    instance = DagsterInstance.get()
    # Each run resolves the EnvVars of the definitions' resources itself; the demo's own queries
    # and the summary need the warehouse resolved the same way, outside a run.
    with open_resources("warehouse", instance=instance) as opened:
        return _materialize_everything(defs, opened.warehouse, instance)


def _materialize_everything(defs: Definitions, warehouse: WarehouseResource, instance: DagsterInstance) -> int:
    """One run per asset over every partition with data, then the summary; 1 if anything failed."""
    from dagster import materialize

    from okr_assets.summary import table_summary

    assets = [*defs.assets, *defs.asset_checks]
    failures: list[str] = []

    def run(selection: list[str], tags: dict[str, str] | None = None) -> dict[str, object]:
        result = materialize(assets, selection=selection, instance=instance, resources=defs.resources,
                             tags=tags or {}, raise_on_error=False, run_config=_QUIET)
        checks = result.get_asset_check_evaluations()
        failed = [c.check_name for c in checks if not c.passed]
        failures.extend(failed)
        status = "ok" if result.success else "FAILED"
        print(f"  {'+'.join(selection)}: {status}, {len(checks) - len(failed)}/{len(checks)} checks passed"
              + (f" (failed: {failed})" if failed else ""))
        if not result.success:
            failures.append(f"run {selection}")
        return {
            (e.asset_key.to_user_string(), k): getattr(v, "value", getattr(v, "data", v))
            for e in result.get_asset_materialization_events()
            for k, v in e.event_specific_data.materialization.metadata.items()
        }

    print("landing every file in the landing folder ...")
    run(["okr_raw"])
    bounds = warehouse.query("SELECT min(partition_date) AS lo, max(partition_date) AS hi FROM okr_raw.okr_raw")
    if bounds["lo"].isna().all():
        print("nothing landed")
        return 1
    lo, hi = bounds["lo"][0].date().isoformat(), bounds["hi"][0].date().isoformat()
    print(f"processing daily partitions {lo} .. {hi} in one run ...")
    run(["okr_processed", "okr_rejects"], _range_tags(lo, hi))
    quarters = warehouse.query(
        "SELECT min(cycle_start) AS lo, max(cycle_start) AS hi FROM okr_processed.okr_processed")
    from okr_assets.lib.quarters import quarter_start

    qlo = quarter_start(quarters["lo"][0].date()).isoformat()
    qhi = quarter_start(quarters["hi"][0].date()).isoformat()
    print(f"curating quarterly partitions {qlo} .. {qhi} in one run ...")
    run(["okr_curated"], _range_tags(qlo, qhi))
    print(f"building point-in-time features for quarters {qlo} .. {qhi} ...")
    run(["okr_features"], _range_tags(qlo, qhi))
    print("training, registering, predicting, reporting drift ...")
    ml = run(["okr_model", "okr_predictions", "okr_drift_report"])

    summary = table_summary(warehouse)
    print(summary.render())
    if ("okr_model", "holdout_roc_auc") in ml:
        print(f"model: {ml['okr_model', 'model']} v{ml['okr_model', 'model_version']}, holdout "
              f"{ml['okr_model', 'holdout_cycle']} ROC-AUC {ml['okr_model', 'holdout_roc_auc']}, "
              f"Brier {ml['okr_model', 'holdout_brier']}; champion version {ml['okr_model', 'champion_version']}")
    if ("okr_drift_report", "drift_detected") in ml:
        drifted = ml.get(("okr_drift_report", "drifted_features")) or []
        print(f"drift: {'DETECTED in ' + ', '.join(drifted) if ml['okr_drift_report', 'drift_detected'] else 'none'}"
              f" (model output shift: {ml.get(('okr_drift_report', 'prediction_shift'))})")
    if failures or not summary.counts_add_up:
        print(f"demo FAILED: {failures or 'row counts do not add up'}", file=sys.stderr)
        return 1
    return 0


# Run logs stay in the instance (and the UI); the console shows warnings and the summary.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
