"""The one place that decides the environment: paths under OKR_HOME and documented env vars.

Every setting has an embedded default so a fresh checkout runs with nothing set. The README's
environment-variable table lists the same names.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def okr_home() -> Path:
    """$OKR_HOME, else ``.okr/`` in the checkout (or the working directory when installed)."""
    if os.environ.get("OKR_HOME"):
        return Path(os.environ["OKR_HOME"]).expanduser().resolve()
    checkout = _PACKAGE_DIR.parent
    base = checkout if (checkout / "pyproject.toml").exists() else Path.cwd()
    return base / ".okr"


def landing_dir() -> Path:
    return okr_home() / "landing"


def quarantine_dir() -> Path:
    return okr_home() / "quarantine"


def dagster_home() -> Path:
    """$DAGSTER_HOME (the Dagster instance), else ``$OKR_HOME/dagster``."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).expanduser().resolve()
    return okr_home() / "dagster"


def default_warehouse_url() -> str:
    return f"duckdb:///{okr_home() / 'warehouse.duckdb'}"


def warehouse_kind() -> str:
    """The warehouse engine as a Dagster asset kind: ``postgres``, ``spark`` or ``duckdb`` (embedded)."""
    url = os.environ.get("OKR_WAREHOUSE_URL", "")
    if url.startswith("postgres"):
        return "postgres"
    return "spark" if url.startswith(("spark:", "sc:")) else "duckdb"


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def first_partition() -> dt.date:
    """First daily partition of okr_processed (OKR_FIRST_PARTITION, default 2024-01-01)."""
    return dt.date.fromisoformat(os.environ.get("OKR_FIRST_PARTITION") or "2024-01-01")


def landing_sensor_interval() -> int:
    return _int("OKR_LANDING_SENSOR_INTERVAL_SECONDS", 30)


def refresh_sensor_interval() -> int:
    # 5 s, the daemon's shortest sensor loop: this tick sits between landing and okr_processed on
    # the freshness path, and only reads the event log (benchmarks/freshness.py).
    return _int("OKR_REFRESH_SENSOR_INTERVAL_SECONDS", 5)


def landing_max_files_per_run() -> int:
    return _int("OKR_LANDING_MAX_FILES_PER_RUN", 20)


def target_score() -> float:
    return float(os.environ.get("OKR_TARGET_SCORE") or 0.7)


def kafka_sensor_interval() -> int:
    return _int("OKR_KAFKA_SENSOR_INTERVAL_SECONDS", 15)


def kafka_max_messages_per_run() -> int:
    return _int("OKR_KAFKA_MAX_MESSAGES_PER_RUN", 50_000)


def kafka_refresh_today_max_messages() -> int:
    """A Kafka landing run of at most this many messages also refreshes today's okr_processed
    partition, in the same run (0 = never): the freshness path of a trickle. Bigger runs (a
    backlog) only land, and okr_refresh_sensor refreshes what they touched in ranges."""
    return _int("OKR_KAFKA_REFRESH_TODAY_MAX_MESSAGES", 5_000)


def retry_base_seconds() -> float:
    """First wait before a sensor asks again for what a failed or cancelled run left behind; it
    doubles with each further attempt (OKR_RETRY_BASE_SECONDS)."""
    return float(os.environ.get("OKR_RETRY_BASE_SECONDS") or 15)


def retry_max_seconds() -> float:
    """Longest wait between two such re-requests (OKR_RETRY_MAX_SECONDS): a recovered warehouse
    or broker is caught up within this long."""
    return float(os.environ.get("OKR_RETRY_MAX_SECONDS") or 120)


def alert_sensor_interval() -> int:
    return _int("OKR_ALERT_SENSOR_INTERVAL_SECONDS", 30)


def alert_timeout_seconds() -> float:
    return float(os.environ.get("OKR_ALERT_TIMEOUT_SECONDS") or 5.0)


def dagster_ui_url() -> str | None:
    """Base URL of the Dagster UI for links in alerts (OKR_DAGSTER_UI_URL); None = no links."""
    return os.environ.get("OKR_DAGSTER_UI_URL") or None
