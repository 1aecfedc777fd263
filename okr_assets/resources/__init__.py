"""Dagster resources: configuration through ConfigurableResource, embedded defaults."""

from __future__ import annotations

import os

from dagster import EnvVar

from okr_assets import settings
from okr_assets.resources.landing import LandingFolderResource
from okr_assets.resources.warehouse import WarehouseResource


def build_resources() -> dict[str, object]:
    """Resources for the current environment: env vars when set, embedded defaults otherwise."""
    # EnvVar keeps a production URL (with credentials) out of the UI and logs; the embedded
    # default holds no secret and is shown as is.
    warehouse_url = (EnvVar("OKR_WAREHOUSE_URL") if os.environ.get("OKR_WAREHOUSE_URL")
                     else settings.default_warehouse_url())
    return {
        "warehouse": WarehouseResource(url=warehouse_url),
        "landing": LandingFolderResource(
            landing_dir=str(settings.landing_dir()), quarantine_dir=str(settings.quarantine_dir())
        ),
    }


__all__ = ["LandingFolderResource", "WarehouseResource", "build_resources"]
