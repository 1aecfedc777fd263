"""The MLflow tracking setup on real stores: what counts as "no champion", what a failing store
raises, and the HTTP limits that keep a run from waiting minutes on a server that is down."""

import os
from pathlib import Path

import pytest

from okr_assets.defs.ml.assets import _champion
from okr_assets.resources.mlflow import (
    CHAMPION,
    HTTP_DEFAULTS,
    REGISTERED_MODEL,
    RegistryError,
    configure_tracking,
    display_uri,
    ensure_experiment,
    registry_failures,
)
from okr_assets_tests.processes import free_port


def test_display_uri_drops_credentials() -> None:
    assert display_uri("http://okr:s3cr%40t@mlflow:5000") == "http://mlflow:5000"
    assert display_uri("postgresql+psycopg2://okr:pw@db:5432/mlflow?password=pw") == "postgresql+psycopg2://db:5432/mlflow"
    assert display_uri("sqlite:////abs/okr/mlflow.db") == "sqlite:////abs/okr/mlflow.db"
    assert display_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_http_limits_apply_only_where_the_environment_sets_none(okr_home: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    assert configure_tracking() == f"sqlite:///{okr_home / 'mlflow.db'}"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_no_champion_only_without_the_model_or_its_alias(okr_home: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(configure_tracking())
    assert _champion(client) is None  # no registered model
    client.create_registered_model(REGISTERED_MODEL)
    assert _champion(client) is None  # the model, without the alias
    with mlflow.start_run(experiment_id=ensure_experiment()) as run:  # artifacts under OKR_HOME
        mlflow.log_text("placeholder", "model/MLmodel")
    version = client.create_model_version(REGISTERED_MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version.version)
    assert str(_champion(client).version) == str(version.version)


def test_a_broken_store_is_not_no_champion(okr_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    broken = okr_home / "broken.db"
    broken.write_text("not a database")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{broken}")
    with pytest.raises(RegistryError, match="failed while reading the champion model: DatabaseError"), \
            registry_failures("reading the champion model", "Nothing was changed."):
        _champion(mlflow.MlflowClient(configure_tracking()))


def test_a_server_that_is_down_fails_fast_naming_it_without_credentials(
        okr_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import mlflow

    for name in HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    port = free_port()  # nothing listens there: connections are refused
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://okr:s3cr%40t@127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(RegistryError) as raised, \
            registry_failures("reading the champion model", "Nothing was changed."):
        _champion(mlflow.MlflowClient(configure_tracking()))
    assert time.monotonic() - started < 20  # MLflow's own retry defaults: ~4 minutes
    text = str(raised.value)
    assert text.startswith(f"MLflow tracking store http://127.0.0.1:{port} failed while reading the champion model: ")
    assert "Connection refused" in text and text.endswith("Nothing was changed.")
    assert "s3cr" not in text and "okr:" not in text
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # MLflow's message is not chained
