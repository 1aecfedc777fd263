"""Freshness latency: from a check-in's ``produced_at`` until its row is in okr_processed.

Starts a Tansu broker and ``dagster dev`` (webserver + daemon, the embedded SQLite instance and
DuckDB warehouse in a temporary OKR_HOME; every sensor at its default interval, the Kafka sensor
every 15 s), waits until a warm-up check-in has gone through, then produces
``OKR_BENCH_FRESHNESS_COUNT`` check-ins (default 24), one every ``OKR_BENCH_FRESHNESS_GAP``
seconds (default 3), and polls okr_processed once a second. Path: okr_kafka_sensor tick -> one
launched run that lands the trickle and refreshes today's okr_processed partition.

Baseline for the ratio: the Kafka sensor's interval (p95 / interval); the 6-hour ETL this
replaces is shown too. Target: p95 <= 30 s (2x the 15 s interval). One JSON line:

    python -m benchmarks.freshness
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import REPO, emit, log, median, percentile, size, tansu, workdir

TARGET_SECONDS = 30.0
ETL_INTERVAL_SECONDS = 6 * 3600


def _seen(warehouse: Any, ids: list[str]) -> set[str]:
    marks = ", ".join("?" for _ in ids)
    try:
        found = warehouse.query(
            f"SELECT checkin_id FROM okr_processed.okr_processed WHERE checkin_id IN ({marks})", ids)
    except Exception:  # the table does not exist before the first refresh
        return set()
    return set(found["checkin_id"].tolist())


def _log_timeline(t0: float) -> None:
    """Each run's lane, queue, start and end time relative to the first measured check-in."""
    from dagster import DagsterInstance, RunsFilter

    with DagsterInstance.get() as instance:
        for record in reversed(instance.get_run_records(RunsFilter())):
            run = record.dagster_run
            when = [record.create_timestamp.timestamp(), record.start_time, record.end_time]
            rel = " ".join("-" if t is None else f"{t - t0:6.1f}" for t in when)
            log(f"run {run.run_id[:8]} {run.tags.get('okr/lane', '?'):24} created/started/ended {rel} "
                f"{run.status.value} {run.tags.get('okr/kafka_offsets', '')}")


def main() -> dict[str, Any]:
    count, gap = size("freshness_count", 24), float(size("freshness_gap", 3))
    started = time.perf_counter()
    from okr_assets import settings
    from okr_assets.lib.stream import CheckinStream
    from okr_assets.resources import KafkaResource, WarehouseResource
    from okr_assets_tests.processes import free_port, port_open, start, stop, wait_until

    interval = settings.kafka_sensor_interval()
    with tansu() as bootstrap, workdir("freshness") as home:
        (home / "landing").mkdir()
        env = {**os.environ, "OKR_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
               "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        for name in ("OKR_WAREHOUSE_URL", "OKR_KAFKA_INGEST_TOPIC", "OKR_KAFKA_SENSOR_INTERVAL_SECONDS",
                     "OKR_REFRESH_SENSOR_INTERVAL_SECONDS"):
            env.pop(name, None)  # the defaults are what is measured
        os.environ["OKR_HOME"] = str(home)
        from okr_assets.instance import ensure_dagster_home

        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        ensure_dagster_home()
        kafka = KafkaResource(bootstrap_servers=bootstrap)
        kafka.ensure_topics(partitions=3)
        warehouse = WarehouseResource(url=f"duckdb:///{home / 'warehouse.duckdb'}")
        port = free_port()
        log_path = home / "dagster-dev.log"
        dev = start([str(Path(sys.executable).parent / "dagster"), "dev", "-m", "okr_assets.definitions",
                     "-h", "127.0.0.1", "-p", str(port)], env=env, log=log_path, cwd=REPO)
        stream = CheckinStream(seed=5)
        produced: dict[str, float] = {}
        seen_at: dict[str, float] = {}
        try:
            wait_until(lambda: port_open(port), 120, "dagster dev", proc=dev, log=log_path)

            def send() -> tuple[str, float]:
                key, value, _ = stream.next_message()
                body = json.loads(value)
                with kafka.producer(linger_ms=0) as producer:
                    producer.send(kafka.ingest_topic, key=key, value=value)
                produced_at = dt.datetime.fromisoformat(body["produced_at"]).timestamp()
                return body["checkin_id"], produced_at

            warm_id, _ = send()
            wait_until(lambda: _seen(warehouse, [warm_id]), 300, "the warm-up check-in in okr_processed",
                       proc=dev, log=log_path)
            log("warm-up check-in processed; measuring")
            next_send = time.monotonic()
            while len(produced) < count or len(seen_at) < count:
                now = time.monotonic()
                if len(produced) < count and now >= next_send:
                    checkin_id, produced_at = send()
                    produced[checkin_id] = produced_at
                    next_send += gap
                pending = [i for i in produced if i not in seen_at]
                if pending:
                    for checkin_id in _seen(warehouse, pending):
                        seen_at[checkin_id] = time.time()
                if len(produced) == count and time.monotonic() > next_send + 300:
                    raise RuntimeError(f"{count - len(seen_at)} check-in(s) not processed within 300 s")
                time.sleep(1.0)
            _log_timeline(min(produced.values()))
        finally:
            stop(dev)
    latencies = sorted(seen_at[i] - produced[i] for i in produced)
    p50, p95 = median(latencies), percentile(latencies, 95)
    return emit({
        "name": "freshness", "ratio": round(p95 / interval, 2),
        "target": f"p95 <= {TARGET_SECONDS:.0f} s with a {interval} s Kafka sensor interval "
                  f"(ratio: p95 / sensor interval, target <= {TARGET_SECONDS / interval:g})",
        "met": p95 <= TARGET_SECONDS, "checkins": count, "gap_seconds": gap,
        "median_seconds": round(p50, 1), "p95_seconds": round(p95, 1), "max_seconds": round(latencies[-1], 1),
        "baseline_sensor_interval_seconds": interval,
        "ratio_to_6h_etl_worst_case": round(p95 / ETL_INTERVAL_SECONDS, 5),
        "latencies_seconds": [round(x, 1) for x in latencies], "poll_resolution_seconds": 1.0,
        "seconds_total": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
