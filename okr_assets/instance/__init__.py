"""The Dagster instance configuration of the embedded setup, written into DAGSTER_HOME on demand.

Two instance configurations exist:
- embedded (``dagster_embedded.yaml`` in this package): SQLite storage under DAGSTER_HOME, used by
  ``make run``, ``make demo`` and ``okr-assets dev``; :func:`ensure_dagster_home` writes it;
- deployment (the checkout's top-level ``dagster.yaml``): PostgreSQL storage, copied into the image
  by the Dockerfile.
"""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

from okr_assets import settings

EMBEDDED_CONFIG = "dagster_embedded.yaml"
HOME_PLACEHOLDER = '"@DAGSTER_HOME@"'  # in EMBEDDED_CONFIG, replaced by the home's absolute path


def embedded_config(home: Path) -> str:
    """Text of the embedded instance configuration for the Dagster home ``home``: the shipped
    file with its storage folder set to ``home``'s absolute path (a path in the file, not
    ``{env: DAGSTER_HOME}``: the instance must be the same whichever environment opens it)."""
    text = files(__name__).joinpath(EMBEDDED_CONFIG).read_text(encoding="utf-8")
    return text.replace(HOME_PLACEHOLDER, json.dumps(str(home.resolve())))


def ensure_dagster_home(home: Path | None = None) -> Path:
    """Create the Dagster home (default: $DAGSTER_HOME, else ``$OKR_HOME/dagster``) and write the
    embedded configuration into its ``dagster.yaml`` unless one is there; return that file's path.

    An existing ``dagster.yaml`` (a deployment's, or one edited by hand) is never overwritten. The
    file is written under a temporary name and renamed, so a process starting meanwhile never
    reads half a file. A new home's storage is created here too, before any server starts:
    SQLite storage initialised by several processes at once (webserver, daemon, a demo run) can
    be stamped twice and then refuse to open ("more than one head")."""
    home = home or settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        tmp = home / f".dagster.yaml.{os.getpid()}.tmp"
        tmp.write_text(embedded_config(home), encoding="utf-8")
        tmp.replace(target)
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(home)):
            pass  # creating the instance creates its databases
    return target
