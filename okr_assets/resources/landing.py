"""The landing folder: where CSV exports are dropped, and where unreadable ones are quarantined."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

LANDING_SUFFIX = ".csv"


class NotLandableError(OSError):
    """The entry is not a regular file (a symbolic link, FIFO, device, directory), or it changed
    while it was being read: it is not landed, and the message says why."""


@dataclass(frozen=True)
class FileRead:
    """The bytes of one file version and the stat that identifies the version."""

    data: bytes
    size: int
    mtime_ns: int

    @property
    def signature(self) -> str:
        """``"mtime_ns:size"``, the version as the landing sensor sees it."""
        return f"{self.mtime_ns}:{self.size}"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


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

    def scan(self, settled_only: bool = True) -> tuple[list[os.DirEntry[str]], dict[str, str]]:
        """``*.csv`` regular files in the landing folder, sorted by name (by default only those not
        modified for ``settle_seconds``: a copy in progress is picked up on a later tick), and the
        ``*.csv`` entries that are not regular files, with what they are (never landed: a symbolic
        link could point anywhere, a FIFO would block the reader)."""
        if not self.landing.is_dir():
            return [], {}
        now = dt.datetime.now().timestamp()
        files: list[os.DirEntry[str]] = []
        skipped: dict[str, str] = {}
        for entry in os.scandir(self.landing):
            if not entry.name.lower().endswith(LANDING_SUFFIX) or entry.name.startswith("."):
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                skipped[entry.name] = _kind(mode)
            elif not settled_only or now - entry.stat().st_mtime >= self.settle_seconds:
                files.append(entry)
        return sorted(files, key=lambda e: e.name), skipped

    def csv_files(self, settled_only: bool = True) -> list[os.DirEntry[str]]:
        """The regular ``*.csv`` files of ``scan``."""
        return self.scan(settled_only)[0]

    def read(self, name: str) -> FileRead:
        """Read a landing file once: its bytes and the stat of exactly those bytes. Raises
        ``FileNotFoundError`` when it is gone and ``NotLandableError`` when it is not a regular
        file or changed while being read (a copy still in progress)."""
        path = self.landing / Path(name).name
        try:
            # O_NOFOLLOW: a symbolic link is refused, not followed; O_NONBLOCK: opening a FIFO
            # does not wait for a writer (fstat then says what it is).
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotLandableError(f"{name} is a symbolic link; only regular files are landed") from None
            raise
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise NotLandableError(f"{name} is {_kind(before.st_mode)}; only regular files are landed")
            chunks = []
            while chunk := os.read(fd, 1 << 24):
                chunks.append(chunk)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(data) != after.st_size:
            raise NotLandableError(f"{name} changed while it was being read; its final version lands on a later tick")
        return FileRead(data, after.st_size, after.st_mtime_ns)

    def move_to_quarantine(self, name: str, error: str, signature: str) -> Path | None:
        """Move an unreadable file aside, with ``<name>.error.txt`` explaining why, if it is still
        the version (``signature``) that was read; None when it changed or vanished meanwhile
        (a new version is landed on its own)."""
        path = self.landing / Path(name).name
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(current.st_mode) or f"{current.st_mtime_ns}:{current.st_size}" != signature:
            return None
        self.quarantine.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.quarantine / f"{stamp}_{path.name}"
        shutil.move(str(path), target)
        target.with_name(target.name + ".error.txt").write_text(error + "\n", encoding="utf-8")
        return target
