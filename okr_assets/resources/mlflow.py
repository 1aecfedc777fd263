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

A failure of the tracking store (server down, timeout, 5xx, database error) is raised as
``RegistryError``: it names the store without the credentials a tracking URI can hold and says
what was left as it was. MLflow's HTTP client would retry a request for about four minutes before
giving up; ``configure_tracking`` sets shorter limits (``HTTP_DEFAULTS``) unless the environment
sets its own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dagster import Field, InitResourceContext, resource

from okr_assets import settings

EXPERIMENT = "okr_at_risk"
REGISTERED_MODEL = "okr_at_risk"
CHAMPION = "champion"


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a SQLite store at $OKR_HOME/mlflow.db (four slashes: absolute)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{settings.okr_home() / 'mlflow.db'}"


# MLflow's own defaults (7 retries, backoff factor 2, 120 s per request) keep a run waiting ~4 min
# on a server that is down. Ours: a refused connection fails the run in ~2-4 s (retries after 0 s
# and 2 s, plus up to 1 s of jitter each), a server that accepts but never answers in ~1.5 min.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class RegistryError(RuntimeError):
    """The MLflow tracking store or model registry failed; nothing the step was to change was changed
    (the message says what stayed as it was)."""


def configure_tracking() -> str:
    """Point MLflow at ``tracking_uri()`` with ``HTTP_DEFAULTS`` wherever the environment sets no
    value of its own; returns the URI. MLflow reads these variables at each request."""
    import mlflow

    for name, value in HTTP_DEFAULTS.items():
        if not os.environ.get(name):
            os.environ[name] = value
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def display_uri(uri: str) -> str:
    """``uri`` without user, password, query or fragment: fit for messages and logs."""
    netloc = urlsplit(uri).netloc
    shown = uri.split("#", 1)[0].split("?", 1)[0]
    return shown.replace(netloc, netloc.rpartition("@")[2], 1) if "@" in netloc else shown


def _redact(text: str, uri: str) -> str:
    """``text`` with ``uri`` shown as ``display_uri(uri)`` and every credential of it masked (MLflow's
    own messages repeat the URL of the failed request, user and password included)."""
    parts = urlsplit(uri)
    text = text.replace(uri.rstrip("/"), display_uri(uri).rstrip("/"))
    secrets = {parts.netloc.rpartition("@")[0], parts.query, parts.password or "",
               unquote(parts.password or "")}
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _store_errors() -> tuple[type[BaseException], ...]:
    """What a failing tracking store raises: MLflow's errors (REST, timeouts, refused connections
    are wrapped in MlflowException), SQLAlchemy's (an SQL store opened directly) and OSError
    (requests and local artifact files)."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    return MlflowException, SQLAlchemyError, OSError


@contextlib.contextmanager
def registry_failures(action: str, outcome: str) -> Iterator[None]:
    """Raise a failure of the tracking store inside the block as ``RegistryError``: what failed
    (``action``), the store without credentials, the cause, and ``outcome`` (what was left as it was)."""
    try:
        yield
    except _store_errors() as exc:
        uri = tracking_uri()
        cause = _redact(f"{type(exc).__name__}: {exc}", uri).rstrip(". ")
        if len(cause) > 1500:
            cause = cause[:1500] + " …"
        # from None: the chained cause would show MLflow's message unredacted
        raise RegistryError(f"MLflow tracking store {display_uri(uri)} failed while {action}: {cause}. "
                            f"{outcome}") from None


def artifact_root() -> str:
    return os.environ.get("OKR_MLFLOW_ARTIFACT_ROOT") or (settings.okr_home() / "mlartifacts").as_uri()


def ensure_experiment(name: str = EXPERIMENT) -> str:
    import mlflow

    configure_tracking()
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
    with registry_failures("starting the MLflow run", "Nothing was changed: the step did not start."):
        ensure_experiment(name)
        tracker = MlFlow(context.replace_config({
            "experiment_name": name, "mlflow_tracking_uri": tracking_uri(),
            "extra_tags": {"okr_assets.code_location": "okr_assets"},
        }))
    try:
        yield tracker
    except BaseException:
        # Best effort: the step's own error is the one to report, not a second failure of the
        # store while marking the MLflow run FAILED (end_run forgets the run even then).
        with contextlib.suppress(*_store_errors()):
            tracker.cleanup_on_error()
        raise
    with registry_failures("ending the MLflow run", "The step's results are written; its MLflow run "
                           "may show as RUNNING."):
        if mlflow.active_run() is not None:
            mlflow.end_run()
