"""MLflow tracking for the ML assets: dagster-mlflow's ``mlflow_tracking``, wrapped.

We keep dagster-mlflow's ``MlFlow`` object (the thing ``mlflow_tracking`` yields: one MLflow run
per Dagster run, tagged with the Dagster run id, found again on re-execution) and wrap it for
three gaps we hit with MLflow 3.x:

1. ``mlflow_tracking`` calls ``mlflow.set_experiment``, which creates a new experiment with its
   artifacts under ``./mlruns`` of whatever directory the run process starts in. We create the
   experiment first, with its artifacts under ``$OKR_HOME/mlartifacts``.
2. It unregisters MLflow's automatic end of run and only ends the run on error, so a successful
   Dagster run would leave its MLflow run "RUNNING" forever; we end it (FINISHED) at teardown.
   (Its ``end_mlflow_on_run_finished`` hook ends the run on every op's event instead.)
3. ``dagster_mlflow`` imports ``mlflow`` at import time (seconds); the wrapper imports both
   inside the resource function, so loading the code location stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import Field, InitResourceContext, resource

from okr_assets import settings

EXPERIMENT = "okr_at_risk"
REGISTERED_MODEL = "okr_at_risk"
CHAMPION = "champion"


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a SQLite store at $OKR_HOME/mlflow.db (four slashes: absolute)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{settings.okr_home() / 'mlflow.db'}"


def artifact_root() -> str:
    return os.environ.get("OKR_MLFLOW_ARTIFACT_ROOT") or (settings.okr_home() / "mlartifacts").as_uri()


def ensure_experiment(name: str = EXPERIMENT) -> str:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if artifact_root().startswith("file:"):
        Path(artifact_root().removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=artifact_root())


@resource(
    config_schema={"experiment_name": Field(str, default_value=EXPERIMENT, is_required=False)},
    description="dagster-mlflow's MlFlow tracking object (one MLflow run per Dagster run) on the "
                "store at MLFLOW_TRACKING_URI or $OKR_HOME/mlflow.db; the run is ended when the step ends.",
)
def okr_mlflow(context: InitResourceContext) -> Iterator[Any]:
    import mlflow
    from dagster_mlflow.resources import MlFlow

    name = context.resource_config.get("experiment_name", EXPERIMENT)
    ensure_experiment(name)
    tracker = MlFlow(context.replace_config({
        "experiment_name": name, "mlflow_tracking_uri": tracking_uri(),
        "extra_tags": {"okr_assets.code_location": "okr_assets"},
    }))
    try:
        yield tracker
    except BaseException:
        tracker.cleanup_on_error()
        raise
    if mlflow.active_run() is not None:
        mlflow.end_run()
