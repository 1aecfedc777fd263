"""Secrets never leak: with a PostgreSQL password and a Kafka SASL password configured, nothing in
run logs, event metadata, run config or tags, MLflow params and tags, or error messages holds them
— for runs that succeed, runs that fail, and sensor ticks that skip."""

import logging
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize
from dagster._serdes import serialize_value

from okr_assets.resources import KafkaResource, WarehouseResource
from okr_assets.resources.mlflow import tracking_uri
from okr_assets_tests.conftest import build_test_resources
from okr_assets_tests.defs.test_assets import ASSETS
from okr_assets_tests.defs.test_kafka import good, produce, tick
from okr_assets_tests.defs.test_ml import _pipeline
from okr_assets_tests.postgres import PostgresServer


def _everything_recorded(instance: DagsterInstance) -> str:
    """All a user, a log shipper or the UI could see of every run on the instance, as text."""
    parts = []
    for run in instance.get_runs():
        parts.append(serialize_value(run))  # run config, tags, status
        parts += [serialize_value(entry) for entry in instance.all_logs(run.run_id)]  # logs, metadata, errors
    return "\n".join(parts)


def test_no_secret_reaches_logs_metadata_mlflow_or_errors(
        okr_home: Path, kafka: KafkaResource, postgres: PostgresServer, instance,
        caplog: pytest.LogCaptureFixture) -> None:
    import mlflow
    import psycopg2

    caplog.set_level(logging.DEBUG)
    pg_secret, kafka_secret, wrong_secret = (f"{kind}-{uuid.uuid4().hex}" for kind in ("pg", "sasl", "wrong"))
    role = f"okr_{uuid.uuid4().hex[:8]}"
    admin = postgres._admin()
    with admin.cursor() as cur:  # a role of its own, whose password is the secret
        cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", [pg_secret])
        cur.execute(f"CREATE DATABASE {role} OWNER {role}")
    admin.close()
    url = f"postgresql://{role}:{pg_secret}@{postgres.host}:{postgres.port}/{role}"
    sasl = kafka.model_copy(update={"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                                    "sasl_username": role, "sasl_password": kafka_secret, "timeout_ms": 1500})

    # A whole successful pipeline on the password-protected warehouse, model logged to MLflow.
    resources = build_test_resources(okr_home, kafka, url)
    _pipeline(okr_home, resources, instance)
    assert materialize(ASSETS, selection=["okr_model", "okr_predictions"], instance=instance,
                       resources=resources).success

    # A wrong database password fails the run; Kafka is used with SASL credentials (Tansu accepts
    # any PLAIN credentials, so that path succeeds: kafka-python's own logs are scanned too).
    bad_url = f"postgresql://{role}:{wrong_secret}@{postgres.host}:{postgres.port}/{role}"
    wrong = materialize(ASSETS, selection=["okr_raw"], instance=instance, raise_on_error=False,
                        resources={**resources, "warehouse": WarehouseResource(url=bad_url)})
    assert not wrong.success
    produce(kafka, [good(1)])
    sasl_tick = tick(sasl, instance, None, resources["warehouse"])
    assert sasl_tick.run_requests
    [request] = sasl_tick.run_requests
    assert materialize(ASSETS, selection=["okr_raw"], instance=instance, resources={**resources, "kafka": sasl},
                       run_config=request.run_config, tags=request.tags).success
    with pytest.raises(psycopg2.OperationalError) as direct:  # the driver's own message, for contrast
        psycopg2.connect(bad_url)

    recorded = _everything_recorded(instance)
    assert "password authentication failed" in recorded  # the failure is explained ...
    client = mlflow.MlflowClient(tracking_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs
    mlflow_text = "\n".join(str(r.data.params) + str(r.data.tags) for r in runs)
    for secret in (pg_secret, kafka_secret, wrong_secret):  # ... and no secret is anywhere
        assert secret not in recorded
        assert secret not in mlflow_text
        assert secret not in caplog.text
        assert secret not in repr(sasl_tick)
    assert wrong_secret not in str(direct.value)
