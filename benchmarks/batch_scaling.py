"""Batch scaling: the batch pipeline at two sizes, to show time grows linearly and memory not at all.

The ``ours`` side of ``benchmarks.batch_pipeline`` (landing -> processed -> curated -> features,
embedded DuckDB warehouse and Dagster instance, each step one run with its blocking checks) runs
in a fresh interpreter over ``OKR_BENCH_SCALING_SMALL_ROWS`` (default 1,000,000) and then
``OKR_BENCH_SCALING_LARGE_ROWS`` (default 4,000,000) generated check-ins; wall time and peak RSS
(``wait4`` rusage) are measured for each.

Targets: time ratio (large / small) <= 1.1x the size ratio (4.4 at the defaults: linear), peak
RSS ratio <= 1.25 (memory does not grow with the data), peak RSS <= 1 GB at both sizes. One JSON
line:

    python -m benchmarks.batch_scaling
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from benchmarks._common import emit, generated_csvs, log, run_measured, size, workdir

TARGET_TIME_SLACK = 1.1  # the time ratio may exceed the size ratio by 10%
TARGET_RSS_RATIO = 1.25
TARGET_RSS_MIB = 1024


def _run(rows: int) -> dict[str, Any]:
    with workdir(f"scaling-{rows}") as home:
        landing = home / "landing"
        landing.mkdir()
        written, paths = generated_csvs(landing, rows)
        megabytes = sum(p.stat().st_size for p in paths) / 2**20
        log(f"generated {written} rows in {len(paths)} CSV files ({megabytes:.0f} MiB)")
        seconds, rss, out = run_measured([sys.executable, "-m", "benchmarks.batch_pipeline", "--phase", "ours",
                                          str(landing), f"duckdb:///{home / 'warehouse.duckdb'}"])
        log(f"{written} rows: {seconds:.1f}s, peak RSS {rss:.0f} MiB")
    detail = json.loads(out.strip().splitlines()[-1])
    if detail["rows"]["okr_raw"] != written:
        raise RuntimeError(f"okr_raw holds {detail['rows']['okr_raw']} rows, {written} were written")
    return {"rows": written, "files": len(paths), "csv_mib": round(megabytes), "seconds": round(seconds, 1),
            "peak_rss_mib": round(rss), "step_seconds": detail["step_seconds"],
            "peak_rss_mib_after_step": detail["peak_rss_mib_after_step"], "table_rows": detail["rows"]}


def main() -> dict[str, Any]:
    small_rows = size("scaling_small_rows", 1_000_000)
    large_rows = size("scaling_large_rows", 4_000_000)
    started = time.perf_counter()
    small, large = _run(small_rows), _run(large_rows)
    size_ratio = large["rows"] / small["rows"]
    time_ratio = large["seconds"] / small["seconds"]
    rss_ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    target_time = round(size_ratio * TARGET_TIME_SLACK, 2)
    return emit({
        "name": "batch_scaling", "ratio": round(time_ratio, 2), "time_ratio": round(time_ratio, 2),
        "rss_ratio": round(rss_ratio, 2), "size_ratio": round(size_ratio, 2),
        "target": f"time ratio <= {target_time} ({TARGET_TIME_SLACK}x the size ratio), peak RSS ratio <= "
                  f"{TARGET_RSS_RATIO}, peak RSS <= {TARGET_RSS_MIB} MiB at both sizes",
        "met": time_ratio <= target_time and rss_ratio <= TARGET_RSS_RATIO
               and max(small["peak_rss_mib"], large["peak_rss_mib"]) <= TARGET_RSS_MIB,
        "engine": "duckdb", "small": small, "large": large,
        "seconds_total": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
