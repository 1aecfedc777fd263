"""What the sensors need to close the loop: the runs in flight, and when to ask again.

A sensor decides what to request from the difference between the source and what landed (the
warehouse's landing ledger), less what runs queued or started will land. Whatever a failed,
cancelled or vanished run left behind is therefore asked for again by a later tick, under a new
run key; ``Backoff`` spaces those requests out while the cause (a warehouse or broker outage)
lasts, so a long outage costs a failed run every couple of minutes, not every tick.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from okr_assets import settings

# Runs that have not finished: what they were asked to do may still land.
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def runs_in_flight(instance: DagsterInstance, tags: Mapping[str, str]) -> list[DagsterRun]:
    """Unfinished runs carrying all of ``tags`` (Dagster's automatic retries carry their
    parent's tags, so they count too)."""
    return list(instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT, tags=dict(tags))))


def op_config(run: DagsterRun, op: str) -> dict:
    """The config a run was given for one op (``{}`` when none)."""
    return ((run.run_config or {}).get("ops", {}).get(op) or {}).get("config") or {}


@dataclass
class Backoff:
    """Re-requests per item (a missing offset range, a file version): how many so far and when the
    next may go. Kept in the sensor cursor, only for items that needed a re-request, and dropped
    once the item has landed."""

    entries: dict[str, list[float]] = field(default_factory=dict)  # key -> [attempts, not before (epoch s)]

    def due(self, key: str, now: float | None = None) -> bool:
        """Whether ``key`` may be asked for again now. An item seen missing for the first time
        waits ``OKR_RETRY_BASE_SECONDS`` first: a failed run's automatic retry (run_retries in
        the instance config) is created by the daemon a moment after the failure, and would
        otherwise race a re-request of the same range."""
        now = now or time.time()
        entry = self.entries.setdefault(key, [0, now + settings.retry_base_seconds()])
        return now >= entry[1]

    def attempt(self, key: str, now: float | None = None) -> int:
        """Record a re-request of ``key`` now; returns its number (1, 2, ...). The next may go after
        ``OKR_RETRY_BASE_SECONDS`` doubling per attempt, at most ``OKR_RETRY_MAX_SECONDS``."""
        now = now or time.time()
        attempts = int(self.entries.get(key, [0, 0.0])[0]) + 1
        wait = min(settings.retry_base_seconds() * 2 ** (attempts - 1), settings.retry_max_seconds())
        self.entries[key] = [attempts, now + wait]
        return attempts

    def keep_only(self, keys: set[str]) -> None:
        """Forget items that no longer need re-requests (they landed, or left the source)."""
        self.entries = {k: v for k, v in self.entries.items() if k in keys}

    def dump(self) -> dict[str, list[float]]:
        return {k: [int(v[0]), round(v[1], 1)] for k, v in sorted(self.entries.items())}
