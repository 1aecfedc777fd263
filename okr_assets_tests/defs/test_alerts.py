"""okr_alert_sensor on a real Dagster instance, a real warehouse and a real HTTP webhook: a failed
run, a failed blocking check, Kafka messages lost before landing, partitions the cascade cannot
refresh, new significant drift and a failed freshness policy each reach the webhook exactly once
(ticks evaluated again included) and are recorded in okr_ops.okr_alerts; while the warehouse is
down, alerts still go out and are recorded once it is back."""

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    MetadataValue,
    SensorResult,
    build_sensor_context,
    materialize,
)

# The freshness daemon and an in-process workspace are Dagster internals; using them runs the very
# evaluation `dagster-daemon` runs, instead of writing freshness events by hand.
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.freshness import FreshnessDaemon

from okr_assets.definitions import defs
from okr_assets.defs.automation.sensors import okr_refresh_sensor
from okr_assets.defs.monitoring.sensors import okr_alert_sensor
from okr_assets.resources import AlertsResource
from okr_assets_tests.conftest import REPO, build_test_resources, checkin, write_csv
from okr_assets_tests.defs.test_assets import ASSETS, fail_the_processed_check, land, metadata, process
from okr_assets_tests.defs.test_ml import _pipeline, drift_the_open_cycle
from okr_assets_tests.postgres import PostgresServer, postgres_server
from okr_assets_tests.processes import free_port
from okr_assets_tests.webhook import WebhookServer


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def _sensor_resources(resources: dict, webhook_url: str) -> dict:
    return {"alerts": AlertsResource(webhook_url=webhook_url, timeout_seconds=1.0),
            "warehouse": resources["warehouse"]}


def _alert_tick(instance: DagsterInstance, cursor: str | None, res: dict) -> SensorResult:
    result = okr_alert_sensor(build_sensor_context(instance=instance, cursor=cursor, resources=res,
                                                   definitions=defs))
    assert isinstance(result, SensorResult)
    return result


def _alerts(resources: dict) -> pd.DataFrame:
    return resources["warehouse"].query("SELECT * FROM okr_ops.okr_alerts ORDER BY kind")


def _fail_a_blocking_check(okr_home: Path, resources: dict, instance: DagsterInstance) -> str:
    return fail_the_processed_check(okr_home, resources, instance).run_id


def test_failed_run_and_blocking_check_reach_the_webhook_once(okr_home: Path, resources: dict, instance,
                                                              webhook: WebhookServer) -> None:
    res = _sensor_resources(resources, webhook.url)
    # The first tick only sets the cursor: what failed before monitoring started is not news.
    start = _alert_tick(instance, None, res)
    assert start.skip_reason.skip_message.startswith("monitoring starts after event")

    run_id = _fail_a_blocking_check(okr_home, resources, instance)
    raised = _alert_tick(instance, start.cursor, res)
    assert raised.skip_reason.skip_message == "raised 2 alert(s): check_failure, run_failure"
    assert sorted(webhook.texts()) == sorted([
        ":rotating_light: Blocking check failed (error): Blocking check okr_processed_schema failed on "
        "okr_processed: 1 failure(s) in new rows of okr_processed 2025-07-01 .. 2025-07-31; most "
        "frequent: column '(row rule)' broke rule 'score_is_clipped_progress'",
        f":rotating_light: Run failed (error): Run {run_id[:8]} (okr_processed, okr_rejects) failed: "
        "Failure: okr_processed_schema failed on the new rows of 2025-07-01 .. 2025-07-31: 1 failure(s) in new "
        "rows of okr_processed 2025-07-01 .. 2025-07-31; most frequent: column '(row rule)' broke rule "
        "'score_is_clipped_progress'. Nothing was published: okr_processed and okr_rejects keep their previous r…",
    ])

    # The same tick evaluated again (a retried tick) and the next tick: nothing is posted twice.
    assert _alert_tick(instance, start.cursor, res).skip_reason.skip_message == "nothing new to alert on"
    _alert_tick(instance, raised.cursor, res)
    assert len(webhook.received) == 2

    table = _alerts(resources)
    assert table["kind"].tolist() == ["check_failure", "run_failure"]
    assert (table["run_id"] == run_id).all() and (table["webhook_status"] == "delivered").all()
    assert table["asset_key"].tolist()[0] == "okr_processed"


def test_a_dead_webhook_never_fails_a_sensor(okr_home: Path, resources: dict, instance) -> None:
    # Alerts are raised by sensors only, so no asset run ever waits for or fails on the webhook.
    res = _sensor_resources(resources, f"http://127.0.0.1:{free_port()}/hooks/okr")  # nothing listens
    start = _alert_tick(instance, None, res)
    _fail_a_blocking_check(okr_home, resources, instance)
    assert _alert_tick(instance, start.cursor, res).skip_reason.skip_message == \
        "raised 2 alert(s): check_failure, run_failure"
    table = _alerts(resources)
    assert table["kind"].tolist() == ["check_failure", "run_failure"]
    assert table["webhook_status"].str.startswith("failed: ").all()
    assert table["webhook_status"].str.contains("Connection refused").all()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster of this test's own, so stopping it cannot disturb the other tests."""
    with postgres_server() as server:
        yield server


def test_alerts_go_out_while_the_warehouse_is_down_and_are_recorded_when_it_is_back(
        okr_home: Path, kafka, instance, webhook: WebhookServer, own_postgres: PostgresServer,
        capfd: pytest.CaptureFixture[str]) -> None:
    resources = build_test_resources(okr_home, kafka, own_postgres.url(own_postgres.create_database()))
    resources["warehouse"].setup()
    res = _sensor_resources(resources, webhook.url)
    start = _alert_tick(instance, None, res)
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(3)])
    own_postgres.stop()
    try:  # the outage one most needs to hear about: a landing run fails on it
        failed = materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources,
                             run_config={"ops": {"okr_raw": {"config": {"files": []}}}}, raise_on_error=False)
        assert not failed.success
        capfd.readouterr()
        down = _alert_tick(instance, start.cursor, res)
        [text] = webhook.texts()  # posted at once ...
        assert text.startswith(f":rotating_light: Run failed (error): Run {failed.run_id[:8]} (okr_raw) failed: ")
        assert "cannot connect to the warehouse" in text
        assert f"ALERT [run_failure] Run {failed.run_id[:8]}" in capfd.readouterr().err  # ... and logged
        assert "1 alert(s) wait to be recorded" in down.skip_reason.skip_message
        # Still down: the next tick posts nothing again and keeps it to record.
        still = _alert_tick(instance, down.cursor, res)
        assert len(webhook.received) == 1 and len(json.loads(still.cursor)["unrecorded"]) == 1
    finally:
        own_postgres.start()
    back = _alert_tick(instance, still.cursor, res)
    assert json.loads(back.cursor)["unrecorded"] == [] and len(webhook.received) == 1
    [row] = _alerts(resources).itertuples()
    assert row.kind == "run_failure" and row.run_id == failed.run_id and row.webhook_status == "delivered"
    _alert_tick(instance, back.cursor, res)
    assert len(webhook.received) == 1 and len(_alerts(resources)) == 1


def test_lost_messages_and_partitions_the_cascade_cannot_refresh_are_alerted(
        okr_home: Path, resources: dict, instance, webhook: WebhookServer) -> None:
    res = _sensor_resources(resources, webhook.url)
    start = _alert_tick(instance, None, res)
    # A landing run recorded Kafka offsets the broker no longer held.
    instance.report_runless_asset_event(AssetMaterialization(
        "okr_raw", metadata={"kafka_offsets_lost": MetadataValue.json(["okr_raw_ingest/0/10-29"]),
                             "messages_lost": 20}))
    # A check-in of a year-long cycle that began before the first okr_curated quarter: its quarter
    # cannot be requested by the cascade.
    old_cycle = {"cycle_id": "2023-FY", "cycle_start": "2023-04-01", "cycle_end": "2024-03-31"}
    write_csv(okr_home / "landing" / "a.csv", [checkin(1, "2024-01-05", **old_cycle)])
    land(instance, resources)
    assert process(instance, resources, {"dagster/asset_partition_range_start": "2024-01-05",
                                         "dagster/asset_partition_range_end": "2024-01-05"}).success
    cursor = None
    for _ in range(2):  # raw -> processed, then processed -> curated (whose quarter is out of range)
        tick = okr_refresh_sensor(build_sensor_context(instance=instance, cursor=cursor))
        for event in tick.asset_events:  # what the daemon stores for a sensor
            instance.report_runless_asset_event(event)
        cursor = tick.cursor
    alerted = _alert_tick(instance, start.cursor, res)
    assert alerted.skip_reason.skip_message == "raised 2 alert(s): cascade_gap, data_loss"
    texts = sorted(webhook.texts())
    assert texts[0] == (":rotating_light: Messages lost before landing (error): 20 Kafka message(s) were no "
                        "longer held by the broker when they were read and could not be landed: "
                        "okr_raw_ingest/0/10-29 (recorded as lost_before_landing rejects)")
    assert texts[1].startswith(":rotating_light: Partitions that cannot be refreshed (error): 1 partition(s) of "
                               "okr_curated that new okr_processed data touched cannot be refreshed: 2023-04-01")
    _alert_tick(instance, alerted.cursor, res)
    assert len(webhook.received) == 2


# The drift report and its alert do not depend on the engine (alerts are recorded on both engines
# in the other tests of this module); one engine keeps the suite within its time budget.
@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_new_significant_drift_reaches_the_webhook_once(okr_home: Path, resources: dict, instance,
                                                        webhook: WebhookServer) -> None:
    res = _sensor_resources(resources, webhook.url)
    _pipeline(okr_home, resources, instance)
    assert materialize(ASSETS, selection=["okr_model"], instance=instance, resources=resources).success
    start = _alert_tick(instance, None, res)
    drift_the_open_cycle(resources, instance)
    report = materialize(ASSETS, selection=["okr_drift_report"], instance=instance, resources=resources)
    assert metadata(report, "okr_drift_report")["drift_detected"] is True

    drifted = _alert_tick(instance, start.cursor, res)
    [text] = webhook.texts()
    assert text.startswith(":rotating_light: Significant drift (error): Significant drift against champion v1 in: ")
    assert "progress" in text and text.endswith("the champion's predicted risk moved too")
    # The next refresh reports the same drift: not news. Re-evaluated ticks post nothing either.
    assert materialize(ASSETS, selection=["okr_drift_report"], instance=instance, resources=resources).success
    assert _alert_tick(instance, drifted.cursor, res).skip_reason.skip_message == "nothing new to alert on"
    _alert_tick(instance, start.cursor, res)
    assert len(webhook.received) == 1
    [row] = _alerts(resources).itertuples()
    assert row.kind == "drift" and row.asset_key == "okr_drift_report" and row.webhook_status == "delivered"


@contextmanager
def _freshness_daemon(instance: DagsterInstance) -> Iterator[Callable[[dt.datetime], None]]:
    """Dagster's freshness daemon over this code location, evaluated at a chosen time."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="okr_assets.definitions", working_directory=str(REPO)),
        location_name="okr_assets")
    with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as workspace:
        daemon = FreshnessDaemon()

        def evaluate(at: dt.datetime) -> None:
            with freeze_time(at):
                list(daemon.run_iteration(workspace))

        yield evaluate


def test_a_failed_freshness_policy_reaches_the_webhook_once(okr_home: Path, resources: dict, instance,
                                                            webhook: WebhookServer) -> None:
    res = _sensor_resources(resources, webhook.url)
    start = _alert_tick(instance, None, res)
    assert materialize(ASSETS, selection=["okr_curated"], instance=instance, resources=resources,
                       partition_key="2025-07-01").success
    curated = AssetKey("okr_curated")
    now = dt.datetime.now(dt.UTC)
    with _freshness_daemon(instance) as evaluate_freshness:
        evaluate_freshness(now)
        assert instance.get_freshness_state_records([curated])[curated].freshness_state.value == "PASS"
        evaluate_freshness(now + dt.timedelta(hours=8))  # one 6-hourly refresh missed: WARN, in the UI only
        assert instance.get_freshness_state_records([curated])[curated].freshness_state.value == "WARN"
        warned = _alert_tick(instance, start.cursor, res)
        assert not webhook.received
        evaluate_freshness(now + dt.timedelta(hours=14))  # two missed: FAIL
        assert instance.get_freshness_state_records([curated])[curated].freshness_state.value == "FAIL"

    stale = _alert_tick(instance, warned.cursor, res)
    assert stale.skip_reason.skip_message == "raised 1 alert(s): freshness"
    [text] = webhook.texts()
    assert text.startswith(
        f":rotating_light: Asset is stale (error): okr_curated is stale: last updated {now:%Y-%m-%d} ")
    assert text.endswith("(policy: at least every 13 h)")
    # okr_features and okr_predictions were never materialized: UNKNOWN, not stale.
    _alert_tick(instance, stale.cursor, res)
    _alert_tick(instance, warned.cursor, res)
    assert len(webhook.received) == 1
    [row] = _alerts(resources).itertuples()
    assert row.kind == "freshness" and row.asset_key == "okr_curated" and row.webhook_status == "delivered"
