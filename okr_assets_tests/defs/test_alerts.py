"""Monitoring sensors on a real Dagster instance, a real warehouse and a real HTTP webhook: a failed
run, a failed blocking check, new significant drift and a failed freshness policy each reach the
webhook exactly once (ticks evaluated again included) and are recorded in okr_ops.okr_alerts."""

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
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
from okr_assets.defs.monitoring.sensors import okr_alert_sensor, okr_run_failure_sensor
from okr_assets.resources import AlertsResource
from okr_assets_tests.conftest import REPO
from okr_assets_tests.defs.test_assets import ASSETS, fail_the_processed_check, metadata
from okr_assets_tests.defs.test_ml import _pipeline, drift_the_open_cycle
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


def _failure_tick(instance: DagsterInstance, cursor: str | None, res: dict) -> str:
    """Evaluate the run-failure sensor as the daemon does; returns its new cursor."""
    data = okr_run_failure_sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor,
                                                                     resources=res))
    assert all(reaction.error is None for reaction in data.dagster_run_reactions or [])
    return data.cursor


def _alerts(resources: dict) -> pd.DataFrame:
    return resources["warehouse"].query("SELECT * FROM okr_ops.okr_alerts ORDER BY kind")


def _fail_a_blocking_check(okr_home: Path, resources: dict, instance: DagsterInstance) -> str:
    return fail_the_processed_check(okr_home, resources, instance).run_id


def test_failed_run_and_blocking_check_reach_the_webhook_once(okr_home: Path, resources: dict, instance,
                                                              webhook: WebhookServer) -> None:
    res = _sensor_resources(resources, webhook.url)
    # First ticks only set the cursors: what failed before monitoring started is not news.
    start = _alert_tick(instance, None, res)
    assert start.skip_reason.skip_message.startswith("monitoring starts after event")
    failures_from = _failure_tick(instance, None, res)

    run_id = _fail_a_blocking_check(okr_home, resources, instance)
    checks = _alert_tick(instance, start.cursor, res)
    assert checks.skip_reason.skip_message == "raised 1 alert(s): check_failure"
    failures = _failure_tick(instance, failures_from, res)
    assert sorted(webhook.texts()) == sorted([
        ":rotating_light: Blocking check failed (error): Blocking check okr_processed_schema failed on "
        "okr_processed: 1 failure(s) in okr_processed 2025-07-01 .. 2025-09-30; most "
        "frequent: column '(row rule)' broke rule 'score_is_clipped_progress'",
        f":rotating_light: Run failed (error): Run {run_id[:8]} (okr_curated) failed: "
        "DagsterAssetCheckFailedError: 1 blocking asset check failed with ERROR severity: okr_processed: "
        "okr_processed_schema",
    ])

    # The same ticks evaluated again (a retried tick) and the next ticks: nothing is posted twice.
    assert _alert_tick(instance, start.cursor, res).skip_reason.skip_message == "nothing new to alert on"
    _failure_tick(instance, failures_from, res)
    _alert_tick(instance, checks.cursor, res)
    _failure_tick(instance, failures, res)
    assert len(webhook.received) == 2

    table = _alerts(resources)
    assert table["kind"].tolist() == ["check_failure", "run_failure"]
    assert (table["run_id"] == run_id).all() and (table["webhook_status"] == "delivered").all()
    assert table["asset_key"].tolist()[0] == "okr_processed"


def test_a_dead_webhook_never_fails_a_sensor(okr_home: Path, resources: dict, instance) -> None:
    # Alerts are raised by sensors only, so no asset run ever waits for or fails on the webhook.
    res = _sensor_resources(resources, f"http://127.0.0.1:{free_port()}/hooks/okr")  # nothing listens
    start, failures_from = _alert_tick(instance, None, res), _failure_tick(instance, None, res)
    _fail_a_blocking_check(okr_home, resources, instance)
    assert _alert_tick(instance, start.cursor, res).skip_reason.skip_message == "raised 1 alert(s): check_failure"
    _failure_tick(instance, failures_from, res)  # asserts the sensor reported no error
    table = _alerts(resources)
    assert table["kind"].tolist() == ["check_failure", "run_failure"]
    assert table["webhook_status"].str.startswith("failed: ").all()
    assert table["webhook_status"].str.contains("Connection refused").all()


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
