"""Kafka ingest throughput: our landing path into okr_raw versus a bare consumer.

N check-in messages (~700 bytes of JSON, default 200,000; ``OKR_BENCH_KAFKA_MESSAGES``) on a
3-partition topic of a Tansu broker started here. Baseline: a bare kafka-python consumer that
assigns the partitions, drains them from the beginning and discards the messages. Ours: the runs
``okr_kafka_sensor`` plans (``OKR_KAFKA_MAX_MESSAGES_PER_RUN`` messages each) executed as okr_raw
materializations (read the exact range, parse, land, blocking check) into the embedded DuckDB and
into PostgreSQL. Target: each >= 0.85x the bare consumer's messages/s. The bare consumer runs before,
between and after the two landings, and each engine is compared with the faster of the two baseline
runs on either side of it: on a shared machine the load moves within minutes, and a single
baseline measured before both landings made the ratio follow the load of the moment (the faster
neighbour, not the mean, so a slow baseline run never flatters the ratio). One JSON line:

    python -m benchmarks.kafka_ingest
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._common import bench_resources, emit, log, postgres_url, size, tansu, timed, workdir

TARGET = 0.85
PARTITIONS = 3


def make_messages(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` distinct valid check-in messages (key, value) of the live stream."""
    from okr_assets.lib.stream import CheckinStream

    stream = CheckinStream(seed=11, teams=6)
    return [stream.next_message()[:2] for _ in range(count)]


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    from okr_assets.resources import KafkaResource

    kafka = KafkaResource(bootstrap_servers=bootstrap, ingest_topic=topic, updates_topic=f"{topic}_updates")
    kafka.ensure_topics(partitions=PARTITIONS)
    started = time.perf_counter()
    with kafka.producer(acks=1, linger_ms=20, batch_size=512 * 1024) as producer:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
    return len(messages) / (time.perf_counter() - started)


def bare_consumer(bootstrap: str, topic: str, expected: int) -> int:
    """Drain every partition from the beginning, discarding the messages; returns the count."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=100)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen = 0
        while seen < expected:
            for records in consumer.poll(timeout_ms=1000, max_records=5000).values():
                seen += len(records)
        return seen
    finally:
        consumer.close()


def land_all(bootstrap: str, topic: str, warehouse_url: str, home: Path) -> int:
    """Land the whole topic the way the sensor and its runs do; returns rows in okr_raw."""
    from dagster import DagsterInstance, build_sensor_context, materialize

    from okr_assets.definitions import defs
    from okr_assets.defs.ingestion.kafka_sensor import okr_kafka_sensor
    from okr_assets.resources import KafkaResource

    kafka = KafkaResource(bootstrap_servers=bootstrap, ingest_topic=topic, updates_topic=f"{topic}_updates",
                          publish_updates=False)
    resources = bench_resources(home, warehouse_url, kafka)
    warehouse = resources["warehouse"]
    with DagsterInstance.ephemeral() as instance:
        tick = okr_kafka_sensor(build_sensor_context(instance=instance,
                                                    resources={"kafka": kafka, "warehouse": warehouse}))
        for request in tick.run_requests:
            result = materialize([*defs.assets, *defs.asset_checks], selection=["okr_raw"], instance=instance,
                                 resources=resources, run_config=request.run_config, tags=request.tags)
            if not result.success:
                raise RuntimeError("a landing run failed")
    return warehouse.count("okr_raw")


def main() -> dict[str, Any]:
    count = size("kafka_messages", 200_000)
    started = time.perf_counter()
    import okr_assets.definitions  # noqa: F401 - load the code location before anything is timed
    messages = make_messages(count)
    avg_bytes = sum(len(v) for _, v in messages) / len(messages)
    with tansu() as bootstrap, workdir("kafka") as home:
        topic = f"bench_ingest_{uuid.uuid4().hex[:6]}"
        produced_per_s = produce(bootstrap, topic, messages)
        del messages
        log(f"produced {count} messages ({avg_bytes:.0f} B avg) at {produced_per_s:,.0f}/s")
        bare: list[float] = []

        def measure_bare() -> None:
            seconds, seen = timed(lambda: bare_consumer(bootstrap, topic, count))
            if seen != count:
                raise RuntimeError(f"bare consumer saw {seen} messages, expected {count}")
            bare.append(seconds)
            log(f"bare consumer: {seen} in {seconds:.1f}s")

        measure_bare()
        duck_s, duck_rows = timed(lambda: land_all(bootstrap, topic, f"duckdb:///{home / 'wh.duckdb'}", home))
        log(f"duckdb landing: {duck_rows} rows in {duck_s:.1f}s")
        measure_bare()
        with postgres_url() as url:
            pg_s, pg_rows = timed(lambda: land_all(bootstrap, topic, url, home))
        log(f"postgres landing: {pg_rows} rows in {pg_s:.1f}s")
        measure_bare()
    figures: dict[str, dict[str, float]] = {}
    for engine, seconds, rows, around in (("duckdb", duck_s, duck_rows, bare[0:2]),
                                          ("postgres", pg_s, pg_rows, bare[1:3])):
        if rows != count:
            raise RuntimeError(f"{engine}: {rows} rows landed, expected {count}")
        bare_rate = count / min(around)
        figures[engine] = {"seconds": round(seconds, 2), "msgs_per_s": round(rows / seconds, 1),
                           "baseline_msgs_per_s": round(bare_rate, 1), "ratio": round((rows / seconds) / bare_rate, 3)}
    ratio = min(f["ratio"] for f in figures.values())
    bare_s = sum(bare) / len(bare)
    return emit({
        "name": "kafka_ingest", "ratio": ratio, "target": f">= {TARGET}x the bare consumer's msgs/s (each engine)",
        "met": ratio >= TARGET, "messages": count, "partitions": PARTITIONS, "avg_message_bytes": round(avg_bytes),
        "baseline_bare_consumer": {"seconds": round(bare_s, 2), "msgs_per_s": round(count / bare_s, 1),
                                   "runs_seconds": [round(s, 2) for s in bare]},
        "ours": figures, "produced_msgs_per_s": round(produced_per_s, 1),
        "seconds_total": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
