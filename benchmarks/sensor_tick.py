"""Sensor tick time: one okr_kafka_sensor evaluation with a large backlog, one okr_landing_sensor
evaluation with many files in the landing folder.

Kafka: ``OKR_BENCH_BACKLOG`` messages (default 1,000,000; small payloads, the sensor never reads
them) on a 3-partition topic of a Tansu broker started here; the tick with no cursor plans the
whole backlog (``OKR_KAFKA_MAX_MESSAGES_PER_RUN`` per run). Baseline: a bare kafka-python
consumer connecting and reading the end offsets. Landing: ``OKR_BENCH_FILES`` CSV files (default
1,000); baseline: ``os.scandir`` + ``stat`` of the folder. Each tick is evaluated
``OKR_BENCH_TICK_REPEATS`` times (default 3, fresh cursor each time) and the slowest counts.
Target: <= 2 s each (Dagster stops a tick at 60 s). One JSON line:

    python -m benchmarks.sensor_tick
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._common import emit, log, median, size, tansu, timed, workdir

TARGET_SECONDS = 2.0
PARTITIONS = 3


def _produce_share(bootstrap: str, topic: str, count: int, worker: int) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks=1, linger_ms=50, batch_size=1024 * 1024)
    value = b'{"schema_version":"1.0","checkin_id":"backlog"}'
    for i in range(count):
        producer.send(topic, value=value, partition=(i + worker) % PARTITIONS)
    producer.flush()
    producer.close()


def produce_backlog(bootstrap: str, topic: str, count: int, workers: int = 2) -> float:
    from okr_assets.resources import KafkaResource

    KafkaResource(bootstrap_servers=bootstrap, ingest_topic=topic, updates_topic=f"{topic}_u").ensure_topics(PARTITIONS)
    started = time.perf_counter()
    shares = [count // workers + (1 if w < count % workers else 0) for w in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_produce_share, args=(bootstrap, topic, n, w)) for w, n in enumerate(shares)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError("a backlog producer failed")
    return count / (time.perf_counter() - started)


def bare_end_offsets(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def kafka_tick(bootstrap: str, topic: str, repeats: int, expected: int,
               warehouse_url: str) -> tuple[list[float], list[float], int]:
    from dagster import DagsterInstance, build_sensor_context

    from okr_assets.defs.ingestion.kafka_sensor import okr_kafka_sensor
    from okr_assets.resources import KafkaResource, WarehouseResource

    kafka = KafkaResource(bootstrap_servers=bootstrap, ingest_topic=topic, updates_topic=f"{topic}_u")
    warehouse = WarehouseResource(url=warehouse_url)  # the landing ledger the tick compares with
    ticks, bare, runs = [], [], 0
    with DagsterInstance.ephemeral() as instance:
        for _ in range(repeats):
            # (Tansu reports a batch's base offset + 1 as the end; the sensor confirms the true end)
            bare.append(timed(lambda: bare_end_offsets(bootstrap, topic))[0])
            seconds, result = timed(lambda: okr_kafka_sensor(
                build_sensor_context(instance=instance, cursor=None,
                                     resources={"kafka": kafka, "warehouse": warehouse})))
            ticks.append(seconds)
            planned = sum(int(r.tags["okr/kafka_messages"]) for r in result.run_requests)
            if planned != expected:
                raise RuntimeError(f"the tick planned {planned} messages, expected {expected}")
            runs = len(result.run_requests)
    return ticks, bare, runs


def landing_tick(folder: Path, files: int, repeats: int) -> tuple[list[float], list[float], int]:
    from dagster import DagsterInstance, build_sensor_context

    from okr_assets.defs.ingestion.sensors import okr_landing_sensor
    from okr_assets.lib.contract import CHECKIN_COLUMNS
    from okr_assets.resources import LandingFolderResource, WarehouseResource

    landing = folder / "landing"
    landing.mkdir()
    header = ",".join(CHECKIN_COLUMNS) + "\n"
    old = time.time() - 3600  # settled long ago
    for i in range(files):
        path = landing / f"export_{i:05d}.csv"
        path.write_text(header + ",".join(["x"] * len(CHECKIN_COLUMNS)) + "\n")
        os.utime(path, (old, old))
    resource = LandingFolderResource(landing_dir=str(landing), quarantine_dir=str(folder / "quarantine"))
    warehouse = WarehouseResource(url=f"duckdb:///{folder / 'warehouse.duckdb'}")

    def scan() -> int:
        return sum(1 for e in os.scandir(landing) if e.is_file() and e.stat().st_size >= 0)

    ticks, bare, runs = [], [], 0
    with DagsterInstance.ephemeral() as instance:
        for _ in range(repeats):
            bare.append(timed(scan)[0])
            seconds, result = timed(lambda: okr_landing_sensor(
                build_sensor_context(instance=instance, cursor=None,
                                     resources={"landing": resource, "warehouse": warehouse})))
            ticks.append(seconds)
            requested = sum(int(r.tags["okr/landing_file_count"]) for r in result.run_requests)
            if requested != files:
                raise RuntimeError(f"the tick requested {requested} files, expected {files}")
            runs = len(result.run_requests)
    return ticks, bare, runs


def main() -> dict[str, Any]:
    backlog, files, repeats = size("backlog", 1_000_000), size("files", 1_000), size("tick_repeats", 3)
    started = time.perf_counter()
    import okr_assets.definitions  # noqa: F401 - load the code location before anything is timed

    with workdir("sensor") as folder:
        l_ticks, l_bare, l_runs = landing_tick(folder, files, repeats)
    log(f"landing tick over {files} files: {max(l_ticks):.3f}s (scan {median(l_bare):.4f}s)")
    with tansu() as bootstrap, workdir("sensor-kafka") as folder:
        topic = f"bench_backlog_{uuid.uuid4().hex[:6]}"
        rate = produce_backlog(bootstrap, topic, backlog)
        log(f"backlog of {backlog} messages produced at {rate:,.0f}/s")
        k_ticks, k_bare, k_runs = kafka_tick(bootstrap, topic, repeats, backlog, f"duckdb:///{folder / 'w.duckdb'}")
    log(f"kafka tick over {backlog} messages: {max(k_ticks):.3f}s (bare end_offsets {median(k_bare):.3f}s)")
    worst = max(max(k_ticks), max(l_ticks))
    return emit({
        "name": "sensor_tick", "ratio": round(max(k_ticks) / median(k_bare), 2),
        "target": f"each tick <= {TARGET_SECONDS} s (ratio: Kafka tick / bare end_offsets)",
        "met": worst <= TARGET_SECONDS,
        "kafka": {"backlog_messages": backlog, "tick_seconds_max": round(max(k_ticks), 3),
                  "tick_seconds": [round(s, 3) for s in k_ticks], "runs_requested": k_runs,
                  "baseline_bare_end_offsets_seconds": round(median(k_bare), 3),
                  "ratio": round(max(k_ticks) / median(k_bare), 2)},
        "landing": {"files": files, "tick_seconds_max": round(max(l_ticks), 3),
                    "tick_seconds": [round(s, 3) for s in l_ticks], "runs_requested": l_runs,
                    "baseline_scandir_stat_seconds": round(median(l_bare), 4),
                    "ratio": round(max(l_ticks) / median(l_bare), 1)},
        "backlog_produced_msgs_per_s": round(rate, 1), "seconds_total": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
