"""Dagster resources: configuration through ConfigurableResource, embedded defaults."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster
from dagster import EnvVar

from okr_assets import settings
from okr_assets.resources.alerts import AlertsResource
from okr_assets.resources.kafka import KafkaResource
from okr_assets.resources.landing import LandingFolderResource
from okr_assets.resources.mlflow import okr_mlflow
from okr_assets.resources.warehouse import DEFAULT_DUCKDB_MEMORY_LIMIT, WarehouseResource


def _env(name: str, default: object = None) -> object:
    """``EnvVar(name)`` when the variable is set (resolved at run time, never shown in the UI),
    otherwise the embedded default."""
    return EnvVar(name) if os.environ.get(name) else default


def build_resources() -> dict[str, object]:
    """Resources for the current environment: env vars when set, embedded defaults otherwise."""
    kafka_options = {
        "bootstrap_servers": _env("KAFKA_BOOTSTRAP_SERVERS"),
        "ingest_topic": _env("OKR_KAFKA_INGEST_TOPIC"),
        "updates_topic": _env("OKR_KAFKA_UPDATES_TOPIC"),
        "client_id": _env("KAFKA_CLIENT_ID"),
        "security_protocol": _env("KAFKA_SECURITY_PROTOCOL"),
        "sasl_mechanism": _env("KAFKA_SASL_MECHANISM"),
        "sasl_username": _env("KAFKA_SASL_USERNAME"),
        "sasl_password": _env("KAFKA_SASL_PASSWORD"),
        "ssl_cafile": _env("KAFKA_SSL_CAFILE"),
        "publish_updates": os.environ.get("OKR_PUBLISH_UPDATES", "true").lower() not in {"0", "false", "no"},
    }
    return {
        "warehouse": WarehouseResource(url=_env("OKR_WAREHOUSE_URL", settings.default_warehouse_url()),
                                       duckdb_memory_limit=os.environ.get("OKR_DUCKDB_MEMORY_LIMIT")
                                       or DEFAULT_DUCKDB_MEMORY_LIMIT,
                                       spark_driver_memory=os.environ.get("OKR_SPARK_DRIVER_MEMORY") or "2g",
                                       spark_master=os.environ.get("OKR_SPARK_MASTER") or ""),
        "landing": LandingFolderResource(
            landing_dir=str(settings.landing_dir()), quarantine_dir=str(settings.quarantine_dir())
        ),
        "kafka": KafkaResource(**{k: v for k, v in kafka_options.items() if v is not None}),
        "mlflow": okr_mlflow,
        # the webhook URL is a secret (it lets anyone post to the channel): EnvVar, never in the UI
        "alerts": AlertsResource(webhook_url=_env("OKR_ALERT_WEBHOOK_URL"),
                                 timeout_seconds=settings.alert_timeout_seconds(), ui_url=settings.dagster_ui_url()),
    }


@contextmanager
def open_resources(*keys: str, instance: dagster.DagsterInstance | None = None) -> Iterator[Any]:
    """The resources of ``build_resources()`` (only ``keys`` when given), initialised the way a run
    initialises them: ``EnvVar``s resolved, set-up before and teardown after. Code that uses a
    resource outside a Dagster run (the demo, the CLI) goes through here, because until then an
    ``EnvVar`` is only the variable's name. Yields Dagster's resources object: ``.warehouse``, ...

    Only the requested resources are initialised (``okr_mlflow`` alone imports MLflow and creates
    the experiment)."""
    configured = build_resources()
    unknown = set(keys) - set(configured)
    if unknown:
        raise KeyError(f"unknown resource(s) {sorted(unknown)}; known: {', '.join(sorted(configured))}")
    selected = {key: configured[key] for key in keys} if keys else configured
    with dagster.build_resources(selected, instance=instance) as resources:
        yield resources


__all__ = ["AlertsResource", "KafkaResource", "LandingFolderResource", "WarehouseResource", "build_resources",
           "open_resources"]
