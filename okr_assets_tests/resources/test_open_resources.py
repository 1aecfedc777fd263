"""open_resources: resources used outside a run are configured exactly as a run configures them,
``EnvVar``s resolved."""

from pathlib import Path

import pytest
from dagster import EnvVar

from okr_assets.resources import build_resources, open_resources


def test_an_env_var_warehouse_resolves_through_open_resources(warehouse_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKR_WAREHOUSE_URL", warehouse_url)
    configured = build_resources()["warehouse"]
    # What the definitions hold: the variable's name, resolved only when Dagster initialises it.
    assert isinstance(configured.url, EnvVar) and configured.url.env_var_name == "OKR_WAREHOUSE_URL"
    with pytest.raises(ValueError, match=r"still the environment variable OKR_WAREHOUSE_URL.*open_resources"):
        configured.count("okr_raw")
    with open_resources("warehouse") as opened:
        assert opened.warehouse.url == warehouse_url
        opened.warehouse.setup()
        assert opened.warehouse.count("okr_raw") == 0


def test_the_embedded_default_without_the_variable(okr_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OKR_WAREHOUSE_URL", raising=False)
    with open_resources("warehouse") as opened:
        assert opened.warehouse.url == f"duckdb:///{okr_home / 'warehouse.duckdb'}"


def test_every_env_var_resource_resolves(okr_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKR_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-secret")
    assert isinstance(build_resources()["alerts"].webhook_url, EnvVar)
    with open_resources("alerts", "kafka") as opened:
        assert opened.alerts.webhook_url == "http://127.0.0.1:9/hook"
        assert opened.kafka.sasl_password == "kafka-secret"


def test_an_unknown_resource_is_refused() -> None:
    with pytest.raises(KeyError, match=r"unknown resource.*'warehose'.*warehouse"), open_resources("warehose"):
        pass
