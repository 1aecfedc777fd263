"""The landing folder: where CSV exports are dropped, and where unreadable ones are quarantined."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

LANDING_SUFFIX = ".csv"


class LandingFolderResource(ConfigurableResource):
    """Folder watched by ``okr_landing_sensor`` (``$OKR_HOME/landing``) and its quarantine."""

    landing_dir: str = Field(description="Folder where check-in CSV exports arrive.")
    quarantine_dir: str = Field(description="Folder receiving files that cannot be read at all.")
    settle_seconds: float = Field(
        default=2.0, description="Ignore files modified more recently than this (still being copied).")

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir)

    @property
    def quarantine(self) -> Path:
        return Path(self.quarantine_dir)

    def csv_files(self, settled_only: bool = True) -> list[os.DirEntry[str]]:
        """``*.csv`` files in the landing folder, sorted by name; by default only those not
        modified for ``settle_seconds`` (a copy in progress is picked up on a later tick)."""
        if not self.landing.is_dir():
            return []
        now = dt.datetime.now().timestamp()
        entries = [
            e for e in os.scandir(self.landing)
            if e.is_file() and e.name.lower().endswith(LANDING_SUFFIX) and not e.name.startswith(".")
            and (not settled_only or now - e.stat().st_mtime >= self.settle_seconds)
        ]
        return sorted(entries, key=lambda e: e.name)

    def move_to_quarantine(self, path: Path, error: str) -> Path:
        """Move an unreadable file aside, with ``<name>.error.txt`` explaining why."""
        self.quarantine.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.quarantine / f"{stamp}_{path.name}"
        shutil.move(str(path), target)
        target.with_name(target.name + ".error.txt").write_text(error + "\n", encoding="utf-8")
        return target
