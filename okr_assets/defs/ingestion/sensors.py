"""okr_landing_sensor: land every new or changed CSV export of the landing folder, closed-loop.

Each tick requests landing runs for the file versions (name, mtime, size) it has not requested
before, then compares the versions it requested earlier with what ``okr_raw.landed_files`` holds
(written in the landing transaction) and what unfinished landing runs will read: a version that a
failed, cancelled or vanished run left behind is requested again under a new run key, spaced out
by ``Backoff`` while the cause lasts. Entries that are not regular files are never landed (a
symbolic link could point anywhere, a FIFO would block the reader) and are logged once.
"""

import hashlib
import json
from dataclasses import dataclass, field

from dagster import (
    DefaultSensorStatus,
    RunConfig,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from okr_assets import settings
from okr_assets.defs.ingestion.assets import LandingConfig, okr_raw
from okr_assets.defs.reconciliation import Backoff, op_config, runs_in_flight
from okr_assets.resources import LandingFolderResource, WarehouseResource
from okr_assets.resources.warehouse import WarehouseUnavailableError

_TAG_LIMIT = 200
SOURCE_TAGS = {"okr/source": "landing"}


@dataclass
class LandingCursor:
    """Per file name still in the folder: the version (``"mtime_ns:size"``) last requested and
    whether the landing ledger has confirmed it; ``skipped``: entries that are not regular files
    (logged once); ``backoff``: re-requests of versions that did not land."""

    files: dict[str, list] = field(default_factory=dict)  # name -> [signature, confirmed]
    skipped: dict[str, str] = field(default_factory=dict)
    backoff: Backoff = field(default_factory=Backoff)

    @classmethod
    def load(cls, raw: str | None) -> "LandingCursor":
        data = json.loads(raw) if raw else {}
        if "files" not in data:  # a cursor of name -> signature requested, before the ledger: to confirm
            return cls({name: [sig, False] for name, sig in data.items()})
        return cls({n: list(v) for n, v in data["files"].items()}, dict(data.get("skipped", {})),
                   Backoff(dict(data.get("retry", {}))))

    def dump(self) -> str:
        return json.dumps({"files": self.files, "skipped": self.skipped, "retry": self.backoff.dump()},
                          sort_keys=True)


def _request(batch: list[tuple[str, str]], retry: int = 0) -> RunRequest:
    key = hashlib.sha1(json.dumps(batch).encode()).hexdigest()[:16]
    names = [name for name, _ in batch]
    tags = {**SOURCE_TAGS, "okr/lane": "landing:file", "okr/landing_files": ", ".join(names)[:_TAG_LIMIT],
            "okr/landing_file_count": str(len(names))}
    if retry:
        tags["okr/trigger"] = f"repair: not landed by an earlier run (attempt {retry})"
    return RunRequest(run_key=f"landing:{key}" + (f":retry{retry}" if retry else ""),
                      run_config=RunConfig(ops={"okr_raw": LandingConfig(files=names)}), tags=tags)


def _batches(items: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    size = settings.landing_max_files_per_run()
    return [items[i:i + size] for i in range(0, len(items), size)]


@sensor(
    name="okr_landing_sensor",
    target=[okr_raw],
    minimum_interval_seconds=settings.landing_sensor_interval(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches $OKR_HOME/landing for new or changed *.csv files and requests one landing "
                "run per batch of files; compares the versions (name, mtime, size) it requested with "
                "okr_raw.landed_files and the runs in flight, and asks again for what did not land.",
)
def okr_landing_sensor(
    context: SensorEvaluationContext, landing: LandingFolderResource, warehouse: WarehouseResource,
) -> SensorResult | SkipReason:
    cursor = LandingCursor.load(context.cursor)
    entries, skipped = landing.scan()
    for name, kind in sorted(skipped.items()):
        if cursor.skipped.get(name) != kind:
            context.log.warning(f"{landing.landing / name} is {kind}, not a regular file: it is not landed")
    cursor.skipped = skipped
    present = {}
    for entry in entries:
        stat = entry.stat(follow_symlinks=False)
        present[entry.name] = f"{stat.st_mtime_ns}:{stat.st_size}"
    new = [(name, sig) for name, sig in present.items() if cursor.files.get(name, [None])[0] != sig]
    # Files that vanished (quarantined, deleted) are forgotten; files still settling keep their state.
    cursor.files = {name: state for name, state in cursor.files.items()
                    if name in present or (landing.landing / name).exists()}

    missing = _missing(context, cursor, present, warehouse)
    for name, sig in new:
        cursor.files[name] = [sig, False]
    due = [(name, sig) for name, sig in missing if cursor.backoff.due(f"{name}@{sig}")]
    requests = [_request(batch) for batch in _batches(new)]
    for batch in _batches(due):
        attempt = max(cursor.backoff.attempt(f"{name}@{sig}") for name, sig in batch)
        context.log.warning(f"asking again for {len(batch)} file version(s) that were requested but have not "
                            f"landed, with no run on them (attempt {attempt}): {', '.join(n for n, _ in batch)}")
        requests.append(_request(batch, retry=attempt))
    if not requests:
        waiting = f"; {len(missing)} file version(s) wait for their next retry" if missing else ""
        return SensorResult(skip_reason=SkipReason(f"no new or changed *.csv in {landing.landing}{waiting}"),
                            cursor=cursor.dump())
    context.log.info(f"requesting {len(requests)} landing run(s) for {len(new)} new or changed file(s)"
                     + (f" and {len(due)} file version(s) again" if due else ""))
    return SensorResult(run_requests=requests, cursor=cursor.dump())


def _missing(context: SensorEvaluationContext, cursor: LandingCursor, present: dict[str, str],
             warehouse: WarehouseResource) -> list[tuple[str, str]]:
    """Confirm the requested versions that landed (``cursor`` is updated) and return those still
    in the folder that neither landed nor are on an unfinished run's list: (name, signature).
    A version that landed as unreadable but is still in the folder (its run died before moving
    it) counts as missing: the next run quarantines it."""
    pending = {name: state[0] for name, state in cursor.files.items()
               if not state[1] and present.get(name) == state[0]}
    if not pending:
        cursor.backoff.keep_only(set())
        return []
    # In-flight runs first: a run ending in between has committed its ledger rows.
    flying: set[str] = set()
    for run in runs_in_flight(context.instance, SOURCE_TAGS):
        files = op_config(run, "okr_raw").get("files")
        if not files:  # a run without a file list lands the whole folder
            return []
        flying.update(files)
    try:
        landed = warehouse.landed_file_versions(sorted(pending))
    except WarehouseUnavailableError as exc:
        context.log.warning(f"cannot compare with what landed this tick ({exc}); new files are still "
                            "requested, and anything missing is asked for on a later tick")
        return []
    missing = []
    for name, sig in pending.items():
        versions = landed.get(name, {})
        if sig in versions and not versions[sig]:
            cursor.files[name][1] = True
        elif name not in flying:
            missing.append((name, sig))
    cursor.backoff.keep_only({f"{name}@{sig}" for name, sig in missing})
    return missing
