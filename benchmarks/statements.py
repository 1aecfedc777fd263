"""Where the batch pipeline's time goes: the warehouse statements of each step, timed.

Runs the ``batch_pipeline`` steps (okr_raw, okr_processed + okr_rejects, okr_curated,
okr_features) in this process over a generated landing folder, with every statement the
warehouse backend executes or fetches timed, and prints the steps' wall times, peak RSS and the
statements that took longest (progress and the table on stderr, one JSON line on stdout). Not one
of ``make bench``'s targets: a profile to read next to them.

    OKR_BENCH_BATCH_ROWS=1000000 python -m benchmarks.statements [--postgres | --url postgresql://...]

``--keep DIR`` generates into (or reuses the CSVs of) ``DIR/landing`` instead of a temporary
folder. ``--profile TEXT`` writes DuckDB's JSON operator profile of every statement containing
TEXT into ``DIR/profiles`` (``--keep`` to read them afterwards).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import PIPELINE_STEPS, emit, generated_csvs, log, peak_rss_mib, size, span_tags, workdir


@contextlib.contextmanager
def timed_statements(seconds: dict[tuple[str, str], list[float]], step: list[str],
                     profile: str | None = None, profiles: Path | None = None) -> Iterator[None]:
    """Time every ``execute``/``fetch``/``stage`` of both backends, keyed by (step, statement start);
    DuckDB statements containing ``profile`` also write their operator profile into ``profiles``."""
    from okr_assets.resources import warehouse_backends as wb

    originals: list[tuple[type, str, Callable[..., Any]]] = []
    written = [0]

    def wrap(cls: type, name: str) -> None:
        original = getattr(cls, name)

        def timed(self: Any, con: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
            profiled = bool(profile and profiles and cls is wb.DuckDBBackend and name == "execute"
                            and profile in str(sql))
            if profiled:
                written[0] += 1
                out = profiles / f"{step[0]}-{written[0]}.json"  # type: ignore[operator]
                con.execute("PRAGMA enable_profiling = 'json'")
                con.execute(f"PRAGMA profiling_output = '{out}'")
                log(f"profiling into {out}")
            started = time.perf_counter()
            try:
                return original(self, con, sql, *args, **kwargs)
            finally:
                if profiled:
                    con.execute("PRAGMA disable_profiling")
                entry = seconds[(step[0], " ".join(str(sql).split())[:120])]
                entry[0] += 1
                entry[1] += time.perf_counter() - started

        originals.append((cls, name, original))
        setattr(cls, name, timed)

    for cls in (wb.DuckDBBackend, wb.PostgresBackend):
        for name in ("execute", "fetch", "stage"):
            wrap(cls, name)
    try:
        yield
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)


def run(home: Path, url: str, profile: str | None = None) -> dict[str, Any]:
    from dagster import materialize

    from benchmarks._common import bench_resources, embedded_instance
    from okr_assets.definitions import defs
    resources = bench_resources(home, url)
    warehouse = resources["warehouse"]
    assets = [*defs.assets, *defs.asset_checks]
    stats: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    steps: dict[str, dict[str, float]] = {}
    current = [""]
    with embedded_instance(home / "dagster") as instance, timed_statements(stats, current, profile, home / "profiles"):
        for selection in PIPELINE_STEPS:
            current[0] = selection[0]
            tags = span_tags(warehouse, selection[0])
            started = time.perf_counter()
            if not materialize(assets, selection=selection, instance=instance, resources=resources, tags=tags).success:
                raise RuntimeError(f"materializing {selection} failed")
            step = steps[selection[0]] = {"seconds": round(time.perf_counter() - started, 2),
                                          "peak_rss_mib": round(peak_rss_mib())}
            log(f"{selection[0]}: {step['seconds']} s, peak RSS {step['peak_rss_mib']} MiB")
    ranked = sorted(stats.items(), key=lambda kv: -kv[1][1])
    for (step, sql), (n, seconds) in ranked[:25]:
        log(f"{step:14s} n={n:4d} {seconds:7.2f} s  {sql}")
    for step in steps:
        steps[step]["in_statements"] = round(sum(s for (st, _), (_, s) in stats.items() if st == step), 2)
    return {"steps": steps, "top_statements": [
        {"step": step, "statement": sql, "calls": n, "seconds": round(seconds, 3)}
        for (step, sql), (n, seconds) in ranked[:25]]}


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="warehouse URL (default: a DuckDB file in the work folder)")
    parser.add_argument("--postgres", action="store_true", help="on a throw-away PostgreSQL cluster")
    parser.add_argument("--keep", type=Path, help="work folder to keep (its landing/ CSVs are reused)")
    parser.add_argument("--profile", metavar="TEXT", help="write DuckDB's JSON operator profile of each statement "
                        "containing TEXT into <work folder>/profiles")
    args = parser.parse_args()
    rows = size("batch_rows", 1_000_000)
    with contextlib.ExitStack() as stack:
        home = args.keep or stack.enter_context(workdir("statements"))
        landing = home / "landing"
        landing.mkdir(parents=True, exist_ok=True)
        if not any(landing.glob("*.csv")):
            written, paths = generated_csvs(landing, rows)
            log(f"generated {written} rows in {len(paths)} CSV files")
        warehouse = home / "statements.duckdb"
        for stale in (warehouse, home / "statements.duckdb.wal", home / "dagster", home / "profiles"):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink(missing_ok=True)
        url = args.url or f"duckdb:///{warehouse}"
        if args.postgres:
            from benchmarks._common import postgres_url

            url = stack.enter_context(postgres_url())
        (home / "profiles").mkdir(exist_ok=True)
        detail = run(home, url, args.profile)
    return emit({"name": "statements", "rows": rows, **detail})


if __name__ == "__main__":
    main()
