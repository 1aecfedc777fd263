"""Batch pipeline: CSV exports through landing -> processed -> curated -> features.

``OKR_BENCH_BATCH_ROWS`` generated check-in rows (default 1,000,000, in the generator's CSV
exports) in a landing folder. Each side runs in a fresh interpreter, whose wall time (imports
included) and peak RSS (``wait4`` rusage) are measured, on the embedded DuckDB warehouse:

- baseline: read every CSV with pandas (all columns as text) and append it to one table;
- engine floor: DuckDB's own ``read_csv`` of the same files (all columns as text) into one table,
  the least the embedded engine can take to hold the rows;
- ours: the code location's assets, in-process executor, recorded by the embedded Dagster
  instance (okr_assets/instance/dagster_embedded.yaml), each as one run with its blocking checks:
  okr_raw landing every file, okr_processed + okr_rejects over every daily partition (single-run
  backfill), okr_curated and okr_features over every quarter;
- ours on PostgreSQL: the same, with the warehouse on a throw-away PostgreSQL cluster (the
  deployment's engine; ``OKR_BENCH_BATCH_POSTGRES=0`` leaves it out while developing).

Targets: on DuckDB <= 1.0x the baseline's time, <= 3x the engine floor's, peak RSS <= 1 GB; on
PostgreSQL <= 2.0x the baseline's time. One JSON line:

    python -m benchmarks.batch_pipeline
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    PIPELINE_STEPS,
    emit,
    generated_csvs,
    log,
    peak_rss_mib,
    postgres_url,
    run_measured,
    size,
    span_tags,
    workdir,
)

TARGET_RATIO = 1.0
TARGET_FLOOR_RATIO = 3.0
TARGET_RSS_MIB = 1024
TARGET_POSTGRES_RATIO = 2.0


def baseline(landing: Path, url: str) -> dict[str, Any]:
    import duckdb
    import pandas as pd

    con = duckdb.connect(url.removeprefix("duckdb:///"))
    rows = 0
    try:
        for i, path in enumerate(sorted(landing.glob("*.csv"))):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            con.register("incoming", frame)
            con.execute("CREATE TABLE raw_csv AS SELECT * FROM incoming" if i == 0
                        else "INSERT INTO raw_csv SELECT * FROM incoming")
            con.unregister("incoming")
            rows += len(frame)
    finally:
        con.close()
    return {"rows": rows}


def engine_floor(landing: Path, url: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(url.removeprefix("duckdb:///"))
    try:
        pattern = str(landing / "*.csv").replace("'", "''")
        con.execute(f"CREATE TABLE raw_csv AS SELECT * FROM read_csv('{pattern}', all_varchar = true, header = true)")
        rows = con.execute("SELECT count(*) FROM raw_csv").fetchone()[0]
    finally:
        con.close()
    return {"rows": rows}


def ours(landing: Path, url: str) -> dict[str, Any]:
    from dagster import materialize

    from benchmarks._common import bench_resources, embedded_instance
    from okr_assets.definitions import defs
    resources = bench_resources(landing.parent, url)
    assets = [*defs.assets, *defs.asset_checks]
    warehouse = resources["warehouse"]
    seconds: dict[str, float] = {}
    peak_mib: dict[str, float] = {}  # the process's peak RSS after each step: which step raises it
    with embedded_instance(landing.parent / "dagster") as instance:  # what `make run` records runs in
        for selection in PIPELINE_STEPS:
            tags = span_tags(warehouse, selection[0])
            started = time.perf_counter()
            if not materialize(assets, selection=selection, instance=instance, resources=resources, tags=tags).success:
                raise RuntimeError(f"materializing {selection} failed")
            seconds[selection[0]] = round(time.perf_counter() - started, 2)
            peak_mib[selection[0]] = round(peak_rss_mib())
    counts = {t: warehouse.count(t) for t in ("okr_raw", "okr_processed", "okr_rejects", "okr_curated", "okr_features")}
    return {"step_seconds": seconds, "peak_rss_mib_after_step": peak_mib, "rows": counts}


def _phase(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["baseline", "engine_floor", "ours"])
    parser.add_argument("landing", type=Path)
    parser.add_argument("url")
    args = parser.parse_args(argv)
    out = {"baseline": baseline, "engine_floor": engine_floor, "ours": ours}[args.phase](args.landing, args.url)
    print(json.dumps(out))


def main() -> dict[str, Any]:
    rows = size("batch_rows", 1_000_000)
    started = time.perf_counter()
    with workdir("batch") as home:
        landing = home / "landing"
        landing.mkdir()
        written, paths = generated_csvs(landing, rows)
        megabytes = sum(p.stat().st_size for p in paths) / 2**20
        log(f"generated {written} rows in {len(paths)} CSV files ({megabytes:.0f} MiB)")
        me = [sys.executable, "-m", "benchmarks.batch_pipeline", "--phase"]
        base_s, base_rss, base_out = run_measured([*me, "baseline", str(landing), f"duckdb:///{home / 'base.duckdb'}"])
        log(f"baseline: {base_s:.1f}s, peak RSS {base_rss:.0f} MiB")
        floor_s, floor_rss, floor_out = run_measured([*me, "engine_floor", str(landing),
                                                      f"duckdb:///{home / 'floor.duckdb'}"])
        log(f"engine floor: {floor_s:.1f}s, peak RSS {floor_rss:.0f} MiB")
        our_s, our_rss, our_out = run_measured([*me, "ours", str(landing), f"duckdb:///{home / 'warehouse.duckdb'}"])
        log(f"ours: {our_s:.1f}s, peak RSS {our_rss:.0f} MiB")
        postgres: dict[str, Any] | None = None
        if size("batch_postgres", 1):
            (home / "pg").mkdir()  # its own Dagster instance, over the same files
            (home / "pg" / "landing").symlink_to(landing, target_is_directory=True)
            with postgres_url() as url:
                pg_s, pg_rss, pg_out = run_measured([*me, "ours", str(home / "pg" / "landing"), url])
            log(f"ours on PostgreSQL: {pg_s:.1f}s, peak RSS {pg_rss:.0f} MiB")
            postgres = {"seconds": round(pg_s, 1), "peak_rss_mib": round(pg_rss), "ratio": round(pg_s / base_s, 2),
                        **json.loads(pg_out.strip().splitlines()[-1])}
    detail = json.loads(our_out.strip().splitlines()[-1])
    if any(json.loads(out.strip().splitlines()[-1])["rows"] != written for out in (base_out, floor_out)) \
            or detail["rows"]["okr_raw"] != written:
        raise RuntimeError("row counts differ from the rows written")
    if postgres is not None and postgres["rows"] != detail["rows"]:
        raise RuntimeError(f"PostgreSQL's tables hold {postgres['rows']}, DuckDB's {detail['rows']}")
    ratio, floor_ratio = our_s / base_s, our_s / floor_s
    postgres_met = postgres is None or postgres["ratio"] <= TARGET_POSTGRES_RATIO
    return emit({
        "name": "batch_pipeline", "ratio": round(ratio, 2), "ratio_to_engine_floor": round(floor_ratio, 2),
        "target": f"<= {TARGET_RATIO}x the pandas read_csv + write baseline's time, <= {TARGET_FLOOR_RATIO}x "
                  f"DuckDB's read_csv into a table, peak RSS <= {TARGET_RSS_MIB} MiB; on PostgreSQL <= "
                  f"{TARGET_POSTGRES_RATIO}x the baseline's time",
        "met": ratio <= TARGET_RATIO and floor_ratio <= TARGET_FLOOR_RATIO and our_rss <= TARGET_RSS_MIB
               and postgres_met,
        "ratio_postgres": postgres and postgres["ratio"],
        "rows": written, "files": len(paths),
        "csv_mib": round(megabytes), "engine": "duckdb",
        "ours": {"seconds": round(our_s, 1), "peak_rss_mib": round(our_rss), **detail},
        "baseline_read_csv_write": {"seconds": round(base_s, 1), "peak_rss_mib": round(base_rss)},
        "engine_floor_read_csv": {"seconds": round(floor_s, 1), "peak_rss_mib": round(floor_rss)},
        "postgres": postgres,
        "rss_ratio": round(our_rss / base_rss, 2), "seconds_total": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    if sys.argv[1:2] == ["--phase"]:
        _phase(sys.argv[2:])
    else:
        main()
