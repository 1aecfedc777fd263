"""Backfill: 90 daily partitions of okr_processed in one single-run backfill, versus the same rows
as one unpartitioned materialization, versus 90 separate runs.

Generated check-ins (``OKR_BENCH_BACKFILL_ROWS``, default 150,000 CSV rows) are landed into
okr_raw once (not timed) on the embedded DuckDB warehouse. Then, each on the same rows of
``OKR_BENCH_BACKFILL_DAYS`` days (default 90):

- single-run backfill: ``process_checkins`` over the partition key range (one run, as
  ``BackfillPolicy.single_run()`` makes every backfill);
- unpartitioned: an unpartitioned asset running the same code (``process_range``) once over the
  same days (the baseline);
- separate runs: one in-process run per partition (a launched run also pays its process start).

The runs are recorded by the embedded instance (``okr_assets/instance/dagster_embedded.yaml``:
SQLite with batched event writes; the target), and for reference by Dagster's stock SQLite
storage and by a PostgreSQL instance with the deployment's ``DAGSTER_EVENT_BATCH_SIZE``. The
single-run and unpartitioned ways alternate ``OKR_BENCH_BACKFILL_REPEATS`` times (default 3);
medians are compared.

Target: single-run backfill <= 1.5x the unpartitioned time. One JSON line:

    python -m benchmarks.backfill
"""

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, multi_asset

from benchmarks._common import (
    bench_resources,
    embedded_instance,
    emit,
    generated_csvs,
    log,
    median,
    postgres_url,
    size,
    timed,
    workdir,
)
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

    results: dict[str, dict[str, float]] = {}
    processed: list[int] = []
    with workdir("backfill") as home:
        (home / "landing").mkdir()
        written, _ = generated_csvs(home / "landing", rows)
        resources = bench_resources(home, f"duckdb:///{home / 'warehouse.duckdb'}")
        warehouse = resources["warehouse"]
        (home / "dagster_stock").mkdir()
        with DagsterInstance.local_temp(str(home / "dagster_stock")) as instance:  # Dagster's default SQLite
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
            results["sqlite_stock"] = _measure(instance, resources, start, end, keys, PAIRED, processed)
        with embedded_instance(home / "dagster") as instance:
            ways = PAIRED + (["separate_runs"] if size("backfill_separate_runs", 1) else [])
            results["embedded"] = _measure(instance, resources, start, end, keys, ways, processed)
        # The same on the deployment's instance storage (dagster-postgres; a throw-away cluster).
        with postgres_url() as url, _postgres_instance(home / "dagster_pg", url) as instance:
            results["postgres"] = _measure(instance, resources, start, end, keys, PAIRED, processed)
    if len(set(processed)) != 1:
        raise RuntimeError(f"the ways produced different okr_processed rows: {processed}")
    ratios = {s: round(r["single_run_backfill"] / r["unpartitioned"], 3) for s, r in results.items()}

    def reference(storage: str) -> dict[str, Any]:
        return {"ratio": ratios[storage], "met": ratios[storage] <= TARGET,
                "seconds": {k: round(v, 2) for k, v in results[storage].items()}}

    return emit({
        "name": "backfill", "ratio": ratios["embedded"],
        "target": f"single-run backfill <= {TARGET}x unpartitioned (embedded instance: SQLite, batched events)",
        "met": ratios["embedded"] <= TARGET, "partitions": days, "rows_in_window": window_rows,
        "rows_processed": processed[0], "engine": "duckdb", "dagster_storage": "embedded (BatchingSqliteStorage)",
        "repeats": size("backfill_repeats", 3),
        "seconds": {k: round(v, 2) for k, v in results["embedded"].items()},
        "separate_runs_ratio": round(results["embedded"].get("separate_runs", float("nan"))
                                     / results["embedded"]["unpartitioned"], 2),
        "stock_sqlite_storage": reference("sqlite_stock"),
        "postgres_storage": reference("postgres"),
        "seconds_total": round(time.perf_counter() - started, 1),
    })


PAIRED = ["unpartitioned", "single_run_backfill"]


def _measure(instance: Any, resources: dict[str, Any], start: dt.date, end: dt.date, keys: list[str],
             ways: list[str], processed: list[int]) -> dict[str, float]:
    """Seconds of each way of processing the window, on ``instance``."""
    from dagster import materialize

    from okr_assets.defs.tables.assets import process_checkins

    def single_run_backfill() -> None:
        tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        assert materialize([process_checkins], instance=instance, resources=resources, tags=tags).success

    def unpartitioned() -> None:
        assert materialize([_unpartitioned_process(start, end)], instance=instance, resources=resources).success

    def separate_runs() -> None:
        for key in keys:
            assert materialize([process_checkins], instance=instance, resources=resources, partition_key=key).success

    fns = {"unpartitioned": unpartitioned, "single_run_backfill": single_run_backfill, "separate_runs": separate_runs}
    samples: dict[str, list[float]] = {name: [] for name in ways}
    storage = type(instance.event_log_storage).__name__
    for _ in range(size("backfill_repeats", 3)):  # alternate the ways: load of the moment hits both
        for name in ways:
            if name == "separate_runs" and samples[name]:
                continue  # 90 runs: once is enough
            samples[name].append(timed(fns[name])[0])
            processed.append(len(resources["warehouse"].read_range("okr_processed", "checkin_date", start, end)))
            log(f"{storage} {name}: {samples[name][-1]:.1f}s ({processed[-1]} rows in okr_processed)")
    return {name: median(values) for name, values in samples.items()}


@contextlib.contextmanager
def _postgres_instance(home: Path, url: str) -> Iterator[Any]:
    from dagster import DagsterInstance

    home.mkdir()
    scheme_url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    (home / "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: \"{scheme_url}\"\n")
    # As docker-compose.yml configures the deployment: range runs' events stored in batches.
    batch = os.environ.get("DAGSTER_EVENT_BATCH_SIZE")
    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = batch or "500"
    try:
        with DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        if batch is None:
            del os.environ["DAGSTER_EVENT_BATCH_SIZE"]



if __name__ == "__main__":
    main()
