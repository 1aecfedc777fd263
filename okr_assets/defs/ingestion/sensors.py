"""okr_landing_sensor: land new or changed CSV exports from the landing folder."""


import hashlib
import json

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
from okr_assets.resources import LandingFolderResource

_TAG_LIMIT = 200


@sensor(
    name="okr_landing_sensor",
    target=[okr_raw],
    minimum_interval_seconds=settings.landing_sensor_interval(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches $OKR_HOME/landing for new or changed *.csv files and requests one landing "
                "run per batch of files; a file version (name, mtime, size) lands once.",
)
def okr_landing_sensor(
    context: SensorEvaluationContext, landing: LandingFolderResource
) -> SensorResult | SkipReason:
    # Cursor: file name -> "mtime_ns:size" of the version already requested. Only files still
    # present are kept, so the cursor stays the size of the folder.
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    present: dict[str, str] = {}
    new: list[tuple[str, str]] = []
    for entry in landing.csv_files():
        stat = entry.stat()
        signature = f"{stat.st_mtime_ns}:{stat.st_size}"
        present[entry.name] = signature
        if seen.get(entry.name) != signature:
            new.append((entry.name, signature))
    # Files that vanished are forgotten; files still settling keep their old signature.
    next_cursor = {name: sig for name, sig in seen.items() if name in present or
                   (landing.landing / name).exists()}
    next_cursor.update(dict(new))
    if not new:
        return SensorResult(skip_reason=SkipReason(f"no new or changed *.csv in {landing.landing}"),
                            cursor=json.dumps(next_cursor, sort_keys=True))

    batch_size = settings.landing_max_files_per_run()
    requests = []
    for i in range(0, len(new), batch_size):
        batch = new[i:i + batch_size]
        key = hashlib.sha1(json.dumps(batch).encode()).hexdigest()[:16]
        names = [name for name, _ in batch]
        requests.append(RunRequest(
            run_key=f"landing:{key}",
            run_config=RunConfig(ops={"okr_raw": LandingConfig(files=names)}),
            tags={"okr/source": "landing", "okr/lane": "landing:file",
                  "okr/landing_files": ", ".join(names)[:_TAG_LIMIT],
                  "okr/landing_file_count": str(len(names))},
        ))
    context.log.info(f"requesting {len(requests)} landing run(s) for {len(new)} file(s)")
    return SensorResult(run_requests=requests, cursor=json.dumps(next_cursor, sort_keys=True))
