"""Backfill: 90 daily partitions of okr_processed in one single-run backfill, versus the same rows
as one unpartitioned materialization, versus 90 separate runs.

Generated check-ins (``OKR_BENCH_BACKFILL_ROWS``, default 150,000 CSV rows) are landed into
okr_raw once (not timed) on the embedded DuckDB warehouse; a SQLite Dagster instance records the
runs. Then, each on the same rows of ``OKR_BENCH_BACKFILL_DAYS`` days (default 90):

- single-run backfill: ``process_checkins`` over the partition key range (one run, as
  ``BackfillPolicy.single_run()`` makes every backfill);
- unpartitioned: an unpartitioned asset running the same code (``process_range``) once over the
  same days (the baseline);
- separate runs: one in-process run per partition (a launched run also pays its process start).

Target: single-run backfill <= 1.5x the unpartitioned time. One JSON line:

    python -m benchmarks.backfill
"""

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, multi_asset

from benchmarks._common import bench_resources, emit, generated_csvs, log, size, timed, workdir
from okr_assets.defs.tables.assets import OKR_PROCESSED, OKR_RAW, OKR_REJECTS, process_range
from okr_assets.resources import KafkaResource, WarehouseResource

TARGET = 1.5


def _unpartitioned_process(start: dt.date, end: dt.date) -> Any:
    @multi_asset(specs=[AssetSpec(OKR_PROCESSED, deps=[OKR_RAW]), AssetSpec(OKR_REJECTS, deps=[OKR_RAW])],
                 name="process_checkins_unpartitioned", can_subset=False)
    def process_unpartitioned(context: AssetExecutionContext, warehouse: WarehouseResource,
                              kafka: KafkaResource) -> Iterator[MaterializeResult]:
        yield from process_range(context, warehouse, kafka, start, end)

    return process_unpartitioned


def main() -> dict[str, Any]:
    rows, days = size("backfill_rows", 150_000), size("backfill_days", 90)
    started = time.perf_counter()
    from dagster import DagsterInstance, materialize

    from okr_assets.definitions import defs
    from okr_assets.defs.tables.assets import process_checkins

    with workdir("backfill") as home:
        (home / "landing").mkdir()
        written, _ = generated_csvs(home / "landing", rows)
        resources = bench_resources(home, f"duckdb:///{home / 'warehouse.duckdb'}")
        warehouse = resources["warehouse"]
        (home / "dagster").mkdir()
        with DagsterInstance.local_temp(str(home / "dagster")) as instance:
            if not materialize([*defs.assets], selection=["okr_raw"], instance=instance, resources=resources).success:
                raise RuntimeError("landing failed")
            # The busiest `days` consecutive days with data.
            per_day = warehouse.query("SELECT partition_date AS d, count(*) AS n FROM okr_raw.okr_raw "
                                      "GROUP BY 1 ORDER BY 1")
            per_day["d"] = per_day["d"].dt.date
            totals = per_day.set_index("d")["n"]
            best = max(totals.index, key=lambda d: sum(totals.get(d + dt.timedelta(days=i), 0) for i in range(days)))
            start, end = best, best + dt.timedelta(days=days)
            keys = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
            window_rows = int(sum(totals.get(start + dt.timedelta(days=i), 0) for i in range(days)))
            log(f"{written} rows landed; backfilling {keys[0]}..{keys[-1]} ({window_rows} rows)")

            def single_run() -> None:
                tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
                assert materialize([process_checkins], instance=instance, resources=resources, tags=tags).success

            def unpartitioned() -> None:
                assert materialize([_unpartitioned_process(start, end)], instance=instance, resources=resources).success

            def separate_runs() -> None:
                for key in keys:
                    assert materialize([process_checkins], instance=instance, resources=resources,
                                       partition_key=key).success

            processed = []
            results: dict[str, float] = {}
            ways = [("unpartitioned", unpartitioned), ("single_run_backfill", single_run),
                    ("separate_runs", separate_runs)][: 3 if size("backfill_separate_runs", 1) else 2]
            for name, fn in ways:
                results[name] = timed(fn)[0]
                processed.append(len(warehouse.read_range("okr_processed", "checkin_date", start, end)))
                log(f"{name}: {results[name]:.1f}s ({processed[-1]} rows in okr_processed)")
            if len(set(processed)) != 1:
                raise RuntimeError(f"the three ways produced different okr_processed rows: {processed}")
    ratio = results["single_run_backfill"] / results["unpartitioned"]
    return emit({
        "name": "backfill", "ratio": round(ratio, 3), "target": f"single-run backfill <= {TARGET}x unpartitioned",
        "met": ratio <= TARGET, "partitions": days, "rows_in_window": window_rows,
        "rows_processed": processed[0], "engine": "duckdb", "dagster_storage": "sqlite",
        "seconds": {k: round(v, 2) for k, v in results.items()},
        "separate_runs_ratio": round(results.get("separate_runs", float("nan")) / results["unpartitioned"], 2),
        "seconds_total": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
