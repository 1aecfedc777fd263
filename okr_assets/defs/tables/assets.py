"""okr_processed, okr_rejects and okr_curated: typed, validated, deduplicated and curated tables.

Thin Dagster shells: the work is done by the pure functions in ``okr_assets.lib``; these assets
read their partition range from the warehouse, call them, replace the range in one transaction
and report counts as metadata. pandas and those functions are imported inside the functions that
run: loading the code location (every run process does) must not import them.
"""


import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from okr_assets import settings
from okr_assets.defs.metadata import WAREHOUSE_KIND, column_schema, counts_table
from okr_assets.defs.partitions import FIRST_PARTITION, daily_partitions, quarterly_partitions
from okr_assets.resources import KafkaResource, WarehouseResource
from okr_assets.resources.kafka import BrokerUnavailableError

if TYPE_CHECKING:
    import pandas as pd

OWNERS = ["team:okr-data-platform"]
TOUCHED_QUARTERS = "okr/touched_cycle_quarters"
OKR_RAW = AssetKey("okr_raw")
OKR_PROCESSED = AssetKey("okr_processed")
OKR_REJECTS = AssetKey("okr_rejects")


def _window(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    window = context.partition_time_window
    return window.start.date(), window.end.date()


def _range_label(start: dt.date, end: dt.date) -> str:
    return f"{start} .. {end - dt.timedelta(days=1)}"


@multi_asset(
    specs=[
        AssetSpec(
            OKR_PROCESSED, deps=[OKR_RAW], group_name="tables", owners=OWNERS,
            kinds={WAREHOUSE_KIND, "pandas", "pandera"}, code_version="1", tags={"layer": "processed"},
            description="Typed, validated, deduplicated check-ins with derived progress and score; "
                        "one daily partition per check-in date (UTC).",
            metadata={"dagster/column_schema": column_schema("okr_processed"),
                      "dagster/table_name": "okr_processed.okr_processed"},
        ),
        AssetSpec(
            OKR_REJECTS, deps=[OKR_RAW], group_name="tables", owners=OWNERS,
            kinds={WAREHOUSE_KIND, "pandas"}, code_version="1", tags={"layer": "processed"},
            description="Every landed row that failed validation, with its reason code, a sentence "
                        "and its lineage; nothing is dropped silently.",
            metadata={"dagster/column_schema": column_schema("okr_rejects"),
                      "dagster/table_name": "okr_processed.okr_rejects"},
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    can_subset=False,
    name="process_checkins",
)
def process_checkins(
    context: AssetExecutionContext, warehouse: WarehouseResource, kafka: KafkaResource
) -> Iterator[MaterializeResult]:
    """Validate and deduplicate the okr_raw rows of a partition range.

    For every landed row of the range: accepted + rejected + deduplicated = landed.
    """
    yield from process_range(context, warehouse, kafka, *_window(context))


def process_range(
    context: AssetExecutionContext, warehouse: WarehouseResource, kafka: KafkaResource, start: dt.date, end: dt.date
) -> Iterator[MaterializeResult]:
    """The work of ``process_checkins`` for the days ``start <= day < end`` (also used, without
    partitions, by the backfill benchmark's baseline)."""
    import pandas as pd

    from okr_assets.lib.routing import quarter_starts
    from okr_assets.lib.validation import split_superseded, validate_checkins

    warehouse.setup()
    raw = warehouse.read_range("okr_raw", "partition_date", start, end)
    latest = warehouse.query(
        "SELECT trim(checkin_id) AS checkin_id, max(raw_id) AS latest FROM okr_raw.okr_raw "
        "WHERE trim(checkin_id) IN (SELECT trim(checkin_id) FROM okr_raw.okr_raw "
        "WHERE partition_date >= ? AND partition_date < ?) GROUP BY 1", [start, end])
    current, superseded = split_superseded(raw, latest.set_index("checkin_id")["latest"])
    result = validate_checkins(current, FIRST_PARTITION)
    accepted, rejects = result.accepted, result.rejects

    # Curated partitions to refresh: the cycles of the new rows and of the rows they replace.
    before = warehouse.query(
        "SELECT DISTINCT cycle_start FROM okr_processed.okr_processed "
        "WHERE checkin_date >= ? AND checkin_date < ?", [start, end])
    quarters = sorted({
        ts.strftime("%Y-%m-%d")
        for starts in (before["cycle_start"], accepted["cycle_start"])
        for ts in quarter_starts(pd.to_datetime(starts)).dropna()
    })

    warehouse.replace_ranges(start, end, [
        ("okr_processed", "checkin_date", accepted),
        ("okr_rejects", "partition_date", rejects),
    ])
    landed, n_acc, n_rej, n_dup = len(raw), len(accepted), len(rejects), len(superseded)
    if n_acc + n_rej + n_dup != landed:  # cannot happen unless a rule loses rows: fail loudly
        raise RuntimeError(f"row accounting broken: {n_acc} + {n_rej} + {n_dup} != {landed}")
    by_reason = rejects["reason"].value_counts().to_dict()
    context.log.info(
        f"okr_processed {_range_label(start, end)}: landed {landed} = accepted {n_acc} + "
        f"rejected {n_rej} + deduplicated {n_dup}; rejects by reason {by_reason}")
    published = _notify_updates(context, kafka, start, end, raw, accepted, rejects, superseded)
    common = {"partition_range": _range_label(start, end), "rows_landed": landed}
    # dagster/row_count is the whole table (the UI shows it as "Row count"); one run writes a range
    # of partitions, so the counts of this range are the rows_* entries.
    yield MaterializeResult(
        asset_key=OKR_PROCESSED,
        metadata={
            **common,
            "dagster/row_count": warehouse.count("okr_processed"),
            "rows_accepted": n_acc,
            "rows_rejected": n_rej,
            "rows_deduplicated": n_dup,
            "counts_add_up": n_acc + n_rej + n_dup == landed,
            "rejects_by_reason": counts_table(by_reason),
            TOUCHED_QUARTERS: MetadataValue.json(quarters),
            "update_notifications_published": published,
        },
    )
    yield MaterializeResult(
        asset_key=OKR_REJECTS,
        metadata={**common, "dagster/row_count": warehouse.count("okr_rejects"), "rows_rejected": n_rej,
                  "rejects_by_reason": counts_table(by_reason)},
    )


def _per_day(frame: "pd.DataFrame", column: str) -> dict[str, int]:
    import pandas as pd

    if frame.empty:
        return {}
    return pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%d").value_counts().to_dict()


def _notify_updates(
    context: AssetExecutionContext, kafka: KafkaResource, start: dt.date, end: dt.date,
    raw: "pd.DataFrame", accepted: "pd.DataFrame", rejects: "pd.DataFrame", superseded: "pd.DataFrame",
) -> int:
    """Publish one message per refreshed partition to the updates topic, so systems outside
    Dagster can react. Best effort: the tables are already committed, so a broker outage is
    logged as an error and shown in metadata rather than failing the run."""
    if not kafka.publish_updates:
        return 0
    import pandas as pd

    landed, acc, rej, dup = (_per_day(raw, "partition_date"), _per_day(accepted, "checkin_date"),
                             _per_day(rejects, "partition_date"), _per_day(superseded, "partition_date"))
    days = pd.date_range(start, end - dt.timedelta(days=1), freq="D").strftime("%Y-%m-%d")
    notes = [
        {"asset": "okr_processed", "partition": day, "run_id": context.run.run_id,
         "rows_landed": landed.get(day, 0), "rows_accepted": acc.get(day, 0),
         "rows_rejected": rej.get(day, 0), "rows_deduplicated": dup.get(day, 0),
         "refreshed_at": dt.datetime.now(dt.UTC).isoformat()}
        for day in days
    ]
    try:
        kafka.publish_json(kafka.updates_topic, key="okr_processed", payloads=notes)
    except BrokerUnavailableError as exc:
        context.log.error(f"could not publish {len(notes)} update notification(s) to "
                          f"{kafka.updates_topic!r}: {exc}")
        return 0
    return len(notes)


@asset(
    name="okr_curated",
    deps=[OKR_PROCESSED],
    partitions_def=quarterly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="tables",
    owners=OWNERS,
    kinds={WAREHOUSE_KIND, "pandas", "pandera"},
    code_version="1",
    tags={"layer": "curated"},
    metadata={"dagster/column_schema": column_schema("okr_curated"),
              "dagster/table_name": "okr_curated.okr_curated"},
)
def okr_curated(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Model-ready key results: one row per (key result, cycle) with context, latest state,
    objective progress and, for closed cycles, the final score and whether it reached 0.7.

    Partitioned by the calendar quarter in which the cycle starts.
    """
    from okr_assets.lib.curation import curate

    warehouse.setup()
    start, end = _window(context)
    processed = warehouse.read_range("okr_processed", "cycle_start", start, end)
    as_of = dt.datetime.now(dt.UTC).date()
    curated = curate(processed, as_of=as_of, target_score=settings.target_score())
    warehouse.replace_ranges(start, end, [("okr_curated", "cycle_quarter", curated)])
    closed = curated[curated["cycle_closed"]]
    reached = float(closed["reached_target"].astype(float).mean()) if len(closed) else float("nan")
    context.log.info(
        f"okr_curated {start}..{end}: {len(curated)} key results from {len(processed)} check-ins")
    return MaterializeResult(
        metadata={
            "dagster/row_count": warehouse.count("okr_curated"),  # the whole table, as for okr_processed
            "partition_range": f"{start} .. {end - dt.timedelta(days=1)}",
            "rows_written": len(curated),
            "checkins_read": len(processed),
            "cycles": MetadataValue.json(sorted(curated["cycle_id"].unique().tolist())),
            "closed_key_results": len(closed),
            "share_reached_target": MetadataValue.float(round(reached, 4)) if len(closed) else "n/a",
            "as_of": as_of.isoformat(),
        }
    )
