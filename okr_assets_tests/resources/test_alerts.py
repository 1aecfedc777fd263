"""AlertsResource against a real HTTP webhook and a real warehouse (DuckDB and PostgreSQL):
each alert is recorded and posted once, and a dead, failing or slow webhook never raises."""

import logging

import pandas as pd
import pytest

from okr_assets.lib.alerts import check_failure_alert, run_failure_alert
from okr_assets.resources import AlertsResource, WarehouseResource
from okr_assets_tests.processes import free_port
from okr_assets_tests.webhook import WebhookServer

LOG = logging.getLogger("okr_assets_tests.alerts")
ALERTS = [run_failure_alert("r" * 36, "__ASSET_JOB", "boom", ["okr_curated"], ["okr_curated"]),
          check_failure_alert(42, "r" * 36, "okr_processed", "okr_processed_schema", "ERROR", "3 failures")]


@pytest.fixture
def warehouse(warehouse_url: str) -> WarehouseResource:
    return WarehouseResource(url=warehouse_url)


def _rows(warehouse: WarehouseResource) -> dict[str, str | None]:
    table = warehouse.query("SELECT alert_id, webhook_status FROM okr_ops.okr_alerts ORDER BY alert_id")
    return {row.alert_id: None if pd.isna(row.webhook_status) else row.webhook_status for row in table.itertuples()}


def test_each_alert_is_recorded_and_posted_once(warehouse: WarehouseResource, caplog) -> None:
    with WebhookServer() as hook, caplog.at_level(logging.INFO, logger=LOG.name):
        alerts = AlertsResource(webhook_url=hook.url, ui_url="http://dagster.example:3000")
        assert alerts.raise_alerts(ALERTS, warehouse, LOG).raised == ALERTS
        assert alerts.raise_alerts(ALERTS, warehouse, LOG).raised == []  # the same events again
    assert len(hook.received) == 2
    assert hook.received[0]["text"].startswith(":rotating_light: Run failed (error): Run rrrrrrrr")
    assert "<http://dagster.example:3000/runs/" in hook.received[0]["blocks"][1]["elements"][0]["text"]
    assert _rows(warehouse) == {a.alert_id: "delivered" for a in ALERTS}
    assert sum("ALERT [run_failure]" in r.message for r in caplog.records) == 1
    assert sum("raised before" in r.message for r in caplog.records) == 2


@pytest.mark.parametrize("receiver", ["refused", "http_500", "slow"])
def test_a_broken_webhook_is_recorded_never_raised(warehouse: WarehouseResource, receiver: str) -> None:
    if receiver == "refused":
        url, server = f"http://127.0.0.1:{free_port()}/hooks/okr", None
    else:
        server = WebhookServer(status=500) if receiver == "http_500" else WebhookServer(delay_seconds=3)
        url = server.__enter__().url
    try:
        alerts = AlertsResource(webhook_url=url, timeout_seconds=0.5)
        assert alerts.raise_alerts(ALERTS[:1], warehouse, LOG).raised == ALERTS[:1]
        assert alerts.raise_alerts(ALERTS[:1], warehouse, LOG).raised == []  # recorded, so never retried
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    [status] = _rows(warehouse).values()
    expected = {"refused": "Connection refused", "http_500": "HTTP 500", "slow": "timed out"}[receiver]
    assert status.startswith("failed: ") and expected in status, status
    if server is not None:
        assert len(server.received) == 1


def test_without_a_webhook_alerts_go_to_the_table_and_log(warehouse: WarehouseResource) -> None:
    assert AlertsResource().raise_alerts(ALERTS, warehouse, LOG).raised == ALERTS
    assert _rows(warehouse) == {a.alert_id: None for a in ALERTS}
    assert AlertsResource(webhook_url="ftp://example.org/hook").post({"text": "x"}).startswith("failed: ")
