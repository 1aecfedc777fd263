"""okr_raw: land check-in exports from the landing folder, append-only and idempotent."""


import json
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from okr_assets.defs.metadata import column_schema
from okr_assets.defs.partitions import FIRST_PARTITION
from okr_assets.lib.csv_reader import UnreadableFileError, read_checkin_csv
from okr_assets.lib.landing import rows_from_file, sha256_of, unreadable_file_row
from okr_assets.lib.schemas import RawCheckins
from okr_assets.resources import LandingFolderResource, WarehouseResource

OWNERS = ["team:okr-data-platform"]
TOUCHED_PARTITIONS = "okr/touched_partitions"


class LandingConfig(Config):
    files: list[str] = Field(
        default_factory=list,
        description="File names in the landing folder to land; empty lands every *.csv there.",
    )


@asset(
    name="okr_raw",
    group_name="ingestion",
    owners=OWNERS,
    kinds={"duckdb", "csv", "pandas"},
    code_version="1",
    tags={"layer": "raw"},
    metadata={"dagster/column_schema": column_schema(RawCheckins), "dagster/table_name": "okr_raw.okr_raw"},
)
def okr_raw(
    context: AssetExecutionContext, config: LandingConfig,
    warehouse: WarehouseResource, landing: LandingFolderResource,
) -> MaterializeResult:
    """Every check-in exactly as landed (text) with lineage: source, file and line, ingest time.

    Append-only and idempotent: a file whose bytes already landed adds nothing. Files that
    cannot be read at all are moved to the quarantine folder and recorded as one rejected row.
    """
    warehouse.setup()
    names = config.files or [e.name for e in landing.csv_files(settled_only=False)]
    ingested_at = pd.Timestamp.now(tz="UTC")
    run_id = context.run.run_id
    inserted_total = skipped_files = quarantined = malformed = 0
    touched: set[str] = set()
    landed_names: list[str] = []
    for name in names:
        path = landing.landing / Path(name).name
        if not path.is_file():
            context.log.warning(f"{name}: no longer in {landing.landing}; nothing to land")
            continue
        data = path.read_bytes()
        digest = sha256_of(data)
        if warehouse.file_landed(digest):
            skipped_files += 1
            context.log.info(f"{name}: these bytes already landed (sha256 {digest[:12]}); skipped")
            continue
        try:
            parsed = read_checkin_csv(data)
            rows = rows_from_file(parsed, name, digest, ingested_at, FIRST_PARTITION, run_id)
            malformed += parsed.malformed_rows
        except UnreadableFileError as exc:
            target = landing.move_to_quarantine(path, str(exc))
            quarantined += 1
            context.log.error(f"{name}: cannot be read ({exc}); moved to {target}")
            rows = unreadable_file_row(name, digest, data, exc.code, str(exc), ingested_at, run_id)
        result = warehouse.land_raw(rows, file_sha256=digest, file_name=name, run_id=run_id)
        inserted_total += result.inserted
        touched |= result.touched_partitions
        landed_names.append(name)
        context.log.info(
            f"{name}: landed {result.inserted} of {len(rows)} rows; "
            f"touches {len(result.touched_partitions)} okr_processed partition(s)")

    ordered = sorted(touched)
    return MaterializeResult(
        metadata={
            "dagster/row_count": warehouse.count("okr_raw"),
            "rows_landed": inserted_total,
            "files_landed": MetadataValue.json(landed_names),
            "files_skipped_already_landed": skipped_files,
            "files_quarantined": quarantined,
            "malformed_rows": malformed,
            TOUCHED_PARTITIONS: MetadataValue.json(ordered),
            "touched_partition_range": f"{ordered[0]} .. {ordered[-1]}" if ordered else "none",
        }
    )


def touched_partitions(metadata: dict) -> list[str]:
    """Read the touched okr_processed partitions back from an okr_raw materialization."""
    value = metadata.get(TOUCHED_PARTITIONS)
    if value is None:
        return []
    data = getattr(value, "data", value)
    return list(data if isinstance(data, list) else json.loads(data))
