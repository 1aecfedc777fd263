"""Storage of the embedded Dagster instance: Dagster's SQLite storage, with the events of a range
run written a batch per transaction.

A single-run backfill of N daily partitions of ``process_checkins`` records 2N "planned" events
when the run is created and 2N materializations when it ends. Dagster's SQLite event log writes
each in its own transactions (one connection and commit in the run's database, another in the
index database): on this project's 2-core machines that was ~2.5 s for a 90-day backfill whose
own work takes ~1.3 s (README Performance, ``backfill``). Dagster already hands these events
over in batches when ``DAGSTER_EVENT_BATCH_SIZE`` is set, and dagster-postgres stores a batch at
once; its SQLite storage stores them one by one. ``BatchingSqliteEventLogStorage`` stores a
batch of asset events with one transaction per database instead. Same tables, same rows, same
layout under DAGSTER_HOME as Dagster's default ``storage: sqlite``, so an existing home keeps its
history and can switch back.

Everything else (reads, run and schedule storage) is Dagster's. This leans on private methods of
Dagster's SQL event log (``_event_to_row``, ``_store_asset_event_tags``, ``_store_asset_event``);
``okr_assets_tests/test_instance.py`` compares its rows with the stock storage's for the same
runs, so a Dagster upgrade that changes them fails there, not in production.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData

# Dagster reads this on every event; set here so every process that opens this instance (run
# workers, the daemon creating runs, the webserver launching them) batches. An explicit value,
# "0" included (batching off), wins.
DEFAULT_EVENT_BATCH_SIZE = "500"


def _is_asset_event(event: EventLogEntry) -> bool:
    return event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log; a batch of asset events is one transaction per database."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", DEFAULT_EVENT_BATCH_SIZE)
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchingSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        # A batch is one step output's materializations, or a new run's planned events (checks'
        # planned events included): the asset events of one run go together, the rest one by one.
        assets = [e for e in events if _is_asset_event(e)]
        if len(assets) < 2 or len({e.run_id for e in assets}) != 1:
            super().store_event_batch(events)
            return
        self._store_asset_events(assets)
        for event in events:
            if not _is_asset_event(event):
                self.store_event(event)

    def _store_asset_events(self, events: Sequence[EventLogEntry]) -> None:
        """What ``store_event`` does for each asset event, with one transaction per database."""
        table = SqlEventLogStorageTable
        rows = [self._event_to_row(e) for e in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(table.insert(), rows)
        with self.index_transaction() as conn:
            # The index database's ids are the storage ids Dagster reads back: keep them in order.
            result = conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows)
            ids = [row[0] for row in result.fetchall()]
            self._store_asset_event_tags(conn, events, ids)
            # The asset table keeps the newest event of each kind per asset: later rows overwrite
            # earlier ones, so writing only the last of each (asset, kind) leaves the same row.
            last = {(e.get_dagster_event().asset_key, e.dagster_event_type): (e, i)
                    for e, i in zip(events, ids, strict=True)}
            for event, event_id in last.values():
                self._store_asset_event(conn, event, event_id)


class BatchingSqliteStorage(DagsterSqliteStorage):
    """``storage: sqlite`` with :class:`BatchingSqliteEventLogStorage` as its event log.

    ``storage: custom`` with ``base_dir``: the Dagster home (``dagster_embedded.yaml``)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # DagsterSqliteStorage.__init__ would open a stock event log first; build the three here.
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = BatchingSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchingSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
