"""Things break in the middle: a landing run is SIGKILLed, PostgreSQL restarts under a run, two
refreshes of the same partitions run at once. Nothing is lost, nothing lands twice, no partition
is left half-written or mixed."""

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dagster import materialize

from okr_assets.resources import KafkaResource, WarehouseResource
from okr_assets.resources import warehouse_backends as backends
from okr_assets_tests.conftest import REPO, build_test_resources, checkin, write_csv
from okr_assets_tests.defs.test_assets import ASSETS, land, process
from okr_assets_tests.defs.test_kafka import good, produce, tick
from okr_assets_tests.postgres import PostgresServer, postgres_server

# Runs okr_raw for the given run config in a fresh process, and SIGKILLs that process inside the
# landing transaction of its second offset range: after the INSERT, before the COMMIT. The first
# range has committed by then; the second must roll back.
_KILLED_RUN = textwrap.dedent("""
    import json, os, signal, sys
    from dagster import materialize, DagsterInstance
    from okr_assets.resources import KafkaResource, WarehouseResource, LandingFolderResource
    from okr_assets.resources import warehouse_backends as backends
    from okr_assets.resources.mlflow import okr_mlflow
    from okr_assets_tests.defs.test_assets import ASSETS

    url, bootstrap, topic, home, run_config = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    calls = {"n": 0}
    real = {cls: cls.unstage for cls in (backends.DuckDBBackend, backends.PostgresBackend)}

    def unstage_then_die(self, con, name):
        real[type(self)](self, con, name)
        if name == "okr_incoming":
            calls["n"] += 1
            if calls["n"] == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    for cls in real:
        cls.unstage = unstage_then_die
    resources = {
        "warehouse": WarehouseResource(url=url),
        "kafka": KafkaResource(bootstrap_servers=bootstrap, ingest_topic=topic, publish_updates=False),
        "landing": LandingFolderResource(landing_dir=home + "/landing", quarantine_dir=home + "/quarantine"),
        "mlflow": okr_mlflow,
    }
    materialize(ASSETS, selection=["okr_raw"], instance=DagsterInstance.ephemeral(), resources=resources,
                run_config=json.loads(run_config))
""")


def test_landing_run_killed_mid_way_then_reexecuted_lands_every_message_once(
        okr_home: Path, resources: dict, instance) -> None:
    kafka, warehouse = resources["kafka"], resources["warehouse"]
    for partition in range(3):
        produce(kafka, [good(100 * partition + i) for i in range(20)], partition=partition)
    [request] = tick(kafka, instance, None, resources["warehouse"]).run_requests
    assert len(request.run_config["ops"]["okr_raw"]["config"]["kafka_ranges"]) == 3

    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, warehouse.url, kafka.bootstrap_servers, kafka.ingest_topic,
         str(okr_home), json.dumps(request.run_config)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert warehouse.count("okr_raw") == 20  # the first range committed, the second rolled back

    # Re-executing the run (same offset ranges from its config) completes the landing exactly once.
    assert materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources,
                       run_config=request.run_config, tags=request.tags).success
    raw = warehouse.query("SELECT checkin_id, source_key FROM okr_raw.okr_raw")
    assert len(raw) == 60 and raw["source_key"].is_unique
    assert sorted(raw["checkin_id"]) == sorted(f"c{100 * p + i}" for p in range(3) for i in range(20))


# Runs okr_processed + okr_rejects over July in a fresh process and SIGKILLs it in the publish,
# after okr_processed's range was replaced and okr_rejects' too, before the transaction commits.
_KILLED_PUBLISH = textwrap.dedent("""
    import json, os, signal, sys
    from dagster import materialize, DagsterInstance
    from okr_assets.resources import KafkaResource, WarehouseResource, LandingFolderResource
    from okr_assets.resources import warehouse_backends as backends
    from okr_assets.resources.warehouse_spark import SparkBackend
    from okr_assets.resources.mlflow import okr_mlflow
    from okr_assets_tests.defs.test_assets import ASSETS, JULY

    url, home = sys.argv[1], sys.argv[2]
    real = {cls: cls.replace_range for cls in (backends.DuckDBBackend, backends.PostgresBackend, SparkBackend)}

    def replace_then_die(self, con, table, *args, **kwargs):
        real[type(self)](self, con, table, *args, **kwargs)
        if table.name == "okr_rejects":
            os.kill(os.getpid(), signal.SIGKILL)

    for cls in real:
        cls.replace_range = replace_then_die
    resources = {
        "warehouse": WarehouseResource(url=url),
        "kafka": KafkaResource(bootstrap_servers="127.0.0.1:1", publish_updates=False),
        "landing": LandingFolderResource(landing_dir=home + "/landing", quarantine_dir=home + "/quarantine"),
        "mlflow": okr_mlflow,
    }
    materialize(ASSETS, selection=["okr_processed", "okr_rejects"], instance=DagsterInstance.ephemeral(),
                resources=resources, tags=JULY)
""")


def test_a_run_killed_while_replacing_a_range_leaves_the_old_range_and_the_retry_publishes(
        okr_home: Path, resources: dict, instance) -> None:
    warehouse = resources["warehouse"]
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(4)] + [
        checkin(9, "2025-07-11", confidence=42)])
    land(instance, resources)
    assert process(instance, resources).success
    old = warehouse.query("SELECT checkin_id, value FROM okr_processed.okr_processed ORDER BY 1")
    old_rejects = warehouse.query("SELECT checkin_id, reason FROM okr_processed.okr_rejects ORDER BY 1")
    # New versions: c1 changes value, c2 becomes invalid (its older valid version stays), c5 is new.
    write_csv(okr_home / "landing" / "b.csv", [checkin(1, "2025-07-10", value=60), checkin(5, "2025-07-12"),
                                               checkin(2, "2025-07-10", confidence=99)])
    land(instance, resources, ["b.csv"])

    killed = subprocess.run([sys.executable, "-c", _KILLED_PUBLISH, warehouse.url, str(okr_home)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-3000:]
    # Both tables still hold the range as it was: neither replacement was committed.
    pd.testing.assert_frame_equal(
        warehouse.query("SELECT checkin_id, value FROM okr_processed.okr_processed ORDER BY 1"), old)
    pd.testing.assert_frame_equal(
        warehouse.query("SELECT checkin_id, reason FROM okr_processed.okr_rejects ORDER BY 1"), old_rejects)

    result = process(instance, resources)  # the retry
    assert result.success
    new = warehouse.query("SELECT checkin_id, value FROM okr_processed.okr_processed ORDER BY 1")
    assert new["checkin_id"].tolist() == ["c0", "c1", "c2", "c3", "c5"]
    assert new.set_index("checkin_id")["value"]["c1"] == 60
    rejects = warehouse.query("SELECT checkin_id, reason FROM okr_processed.okr_rejects ORDER BY 1")
    assert rejects.values.tolist() == [["c2", "confidence_out_of_range"], ["c9", "confidence_out_of_range"]]


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster of this test's own, so restarting it cannot disturb the other tests."""
    with postgres_server() as server:
        yield server


def test_postgres_restart_during_a_run(okr_home: Path, kafka: KafkaResource, instance,
                                       own_postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    resources = build_test_resources(okr_home, kafka, own_postgres.url(own_postgres.create_database()))
    warehouse: WarehouseResource = resources["warehouse"]
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(6)])
    land(instance, resources)
    assert process(instance, resources).success
    before = warehouse.query("SELECT * FROM okr_processed.okr_processed ORDER BY checkin_id")
    assert len(before) == 6

    # New check-ins (and a newer version of c1) land; then, while the run stages the range (the
    # engine's INSERT of the accepted rows done, not yet committed), the server restarts.
    write_csv(okr_home / "landing" / "b.csv", [checkin(i, "2025-07-10") for i in range(6, 9)]
              + [checkin(1, "2025-07-10", value=60)])
    land(instance, resources, ["b.csv"])
    real_execute = backends.PostgresBackend.execute
    restarted = []

    def execute_then_restart(self: backends.PostgresBackend, con: object, sql: str, params=()) -> None:
        real_execute(self, con, sql, params)
        if not restarted and sql.startswith("INSERT INTO") and "okr_processed_staged" in sql:
            restarted.append(sql)
            own_postgres.restart()

    monkeypatch.setattr(backends.PostgresBackend, "execute", execute_then_restart)
    failed = process(instance, resources)
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error.to_string())
    assert "lost the connection to the warehouse" in message and "can be retried" in message
    assert own_postgres.password not in message
    after_failure = warehouse.query("SELECT * FROM okr_processed.okr_processed ORDER BY checkin_id")
    assert after_failure.equals(before)  # no half-written partition

    assert restarted
    monkeypatch.setattr(backends.PostgresBackend, "execute", real_execute)
    assert process(instance, resources).success  # the retry
    after = warehouse.query("SELECT checkin_id, value FROM okr_processed.okr_processed ORDER BY checkin_id")
    assert after["checkin_id"].is_unique and len(after) == 9
    assert after.set_index("checkin_id")["value"]["c1"] == 60


# Materializes okr_curated for a quarter in a fresh process, the way a run does: `tags` says how
# it was launched (a backfill from the UI, a sensor refresh). Just before the staged rows go in,
# it waits up to 6 s for its twin to get as far, so two refreshes that are not kept apart overlap.
_CONCURRENT_REFRESH = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from dagster import DagsterInstance, materialize
    from okr_assets.resources import KafkaResource, WarehouseResource, LandingFolderResource
    from okr_assets.resources.mlflow import okr_mlflow
    from okr_assets_tests.defs.test_assets import ASSETS

    url, home, me, twin, tags = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
    real = WarehouseResource.insert_staged

    def load_when_both_are_here(self, name, expr):
        (home / f"arrived-{me}").write_text("here")
        deadline = time.monotonic() + 6
        while not (home / f"arrived-{twin}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return real(self, name, expr)

    WarehouseResource.insert_staged = load_when_both_are_here
    resources = {"warehouse": WarehouseResource(url=url),
                 "kafka": KafkaResource(bootstrap_servers="127.0.0.1:1", publish_updates=False),
                 "landing": LandingFolderResource(landing_dir=str(home / "landing"), quarantine_dir=str(home / "q")),
                 "mlflow": okr_mlflow}
    result = materialize(ASSETS, selection=["okr_curated"], instance=DagsterInstance.ephemeral(),
                         resources=resources, tags=tags)
    print("ok" if result.success else "failed")
""")


def test_a_backfill_and_a_sensor_refresh_of_the_same_quarter_give_the_rows_of_one_run(
        okr_home: Path, kafka: KafkaResource, postgres: PostgresServer, instance) -> None:
    resources = build_test_resources(okr_home, kafka, postgres.url(postgres.create_database()))
    warehouse: WarehouseResource = resources["warehouse"]
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, f"2025-07-{10 + i % 9:02d}") for i in range(30)])
    land(instance, resources)
    assert process(instance, resources).success
    quarter = {"dagster/asset_partition_range_start": "2025-07-01", "dagster/asset_partition_range_end": "2025-07-01"}
    assert materialize(ASSETS, selection=["okr_curated"], instance=instance, resources=resources, tags=quarter).success
    one_run = warehouse.query("SELECT * FROM okr_curated.okr_curated ORDER BY key_result_id").drop(columns="as_of")

    backfill = {**quarter, "dagster/backfill": "ui-backfill"}
    refresh = {**quarter, "okr/trigger": "new okr_processed materializations", "okr/refresh_target": "okr_curated"}
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_REFRESH, warehouse.url, str(okr_home), me, twin,
                               json.dumps(tags)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me, twin, tags in (("a", "b", backfill), ("b", "a", refresh))]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [(out.strip().splitlines() or ["no output"])[-1] for out, _ in outputs] == ["ok", "ok"], \
        [err[-3000:] for _, err in outputs]
    both = warehouse.query("SELECT * FROM okr_curated.okr_curated ORDER BY key_result_id").drop(columns="as_of")
    pd.testing.assert_frame_equal(both, one_run)  # not twice the rows, not a mix
