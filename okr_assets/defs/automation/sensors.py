"""okr_refresh_sensor: refresh exactly the partitions that new data touched.

A cascade over materialization events, not over time:
- each new ``okr_raw`` materialization (file or Kafka landing) lists the okr_processed
  partitions its rows touch (late check-ins for old dates included) -> one run per contiguous
  range of those days, less the partition a Kafka trickle run refreshed itself (decided once
  that run has finished: it refreshes after landing);
- each new ``okr_processed`` materialization lists the cycle quarters its rows belong to ->
  one okr_curated run per contiguous range of quarters;
- each new ``okr_curated`` partition -> the same okr_features quarter.
Declarative automation cannot express this: which curated quarter a check-in day feeds depends on
the data (its cycle_start), not on a fixed partition mapping.
"""


import json

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from okr_assets import settings
from okr_assets.defs.ingestion.assets import REFRESHES_PARTITION, TOUCHED_PARTITIONS
from okr_assets.defs.partitions import contiguous_ranges, daily_partitions, quarterly_partitions
from okr_assets.defs.tables.assets import OKR_PROCESSED, OKR_RAW, OKR_REJECTS, TOUCHED_QUARTERS

OKR_CURATED = AssetKey("okr_curated")
OKR_FEATURES = AssetKey("okr_features")
_BATCH = 500


def _json_list(metadata: dict, key: str) -> list[str]:
    value = metadata.get(key)
    if value is None:
        return []
    data = getattr(value, "data", value)
    return list(data if isinstance(data, list) else json.loads(data))


RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
REFRESH_TARGET = "okr/refresh_target"


def range_request(assets: list[AssetKey], start: str, end: str, run_key: str, reason: str) -> RunRequest:
    """A run over an inclusive partition key range (one run, thanks to single-run backfill policy).

    Each asset has its own lane (``okr/lane``, limited to one run at a time in ``dagster.yaml``), so
    refreshes of the same partitions apply in the order they were requested."""
    target = assets[0].to_user_string()
    return RunRequest(
        run_key=run_key,
        asset_selection=assets,
        tags={RANGE_START: start, RANGE_END: end, "okr/trigger": reason,
              "okr/lane": f"refresh:{target}", REFRESH_TARGET: target,
              # okr_processed is on the path from a new check-in to a queryable row: it is
              # dequeued before curated, feature and ML runs (benchmarks/freshness.py)
              **({"dagster/priority": "10"} if assets[0] == OKR_PROCESSED else {})},
    )


def _waiting_ranges(instance: DagsterInstance, target: AssetKey) -> list[tuple[str, str]]:
    """Partition ranges of refresh runs of ``target`` that are queued and have not started: they
    will read the newest upstream data when they start, so a new request inside one is redundant."""
    runs = instance.get_runs(filters=RunsFilter(
        statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED],
        tags={REFRESH_TARGET: target.to_user_string()}))
    return [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in runs if RANGE_START in r.tags]


def left_to_refresh(touched: set[str], run: DagsterRun | None) -> set[str] | None:
    """The partitions a landing touched that still need a refresh run, or None to decide on a
    later tick: the landing run refreshes one itself (tag ``okr/refreshes_partition``, after
    landing) and has not finished. If that run failed, every touched partition is refreshed."""
    refreshed = run.tags.get(REFRESHES_PARTITION) if run is not None else None
    if refreshed is None:
        return touched
    if not run.is_finished:
        return None
    return touched - {refreshed} if run.status == DagsterRunStatus.SUCCESS else touched


def _raw_partitions(context: SensorEvaluationContext, records: list) -> tuple[list, set[str]]:
    """(the okr_raw records decided now, the partitions they leave to refresh): records stop at
    the first one whose landing run is still refreshing a partition itself."""
    runs: dict[str, DagsterRun | None] = {}
    keys: set[str] = set()
    for i, record in enumerate(records):
        run_id = record.run_id
        if run_id not in runs:
            runs[run_id] = context.instance.get_run_by_id(run_id)
        touched = set(_json_list(record.asset_materialization.metadata, TOUCHED_PARTITIONS))
        left = left_to_refresh(touched, runs[run_id])
        if left is None:
            context.log.info(f"raw: run {run_id[:8]} is still refreshing the partition it landed; "
                             f"its landing (and any after it) are cascaded on a later tick")
            return records[:i], keys
        keys |= left
    return records, keys


def _processed_quarters(context: SensorEvaluationContext, records: list) -> tuple[list, set[str]]:
    """The curated quarters each okr_processed materialization lists as touched."""
    return records, {key for r in records for key in _json_list(r.asset_materialization.metadata, TOUCHED_QUARTERS)}


def _own_partitions(context: SensorEvaluationContext, records: list) -> tuple[list, set[str]]:
    """The materialized partitions themselves (okr_curated -> the same okr_features quarters)."""
    return records, {r.asset_materialization.partition for r in records}


@sensor(
    name="okr_refresh_sensor",
    minimum_interval_seconds=settings.refresh_sensor_interval(),
    default_status=DefaultSensorStatus.RUNNING,
    asset_selection=[OKR_PROCESSED, OKR_REJECTS, OKR_CURATED, OKR_FEATURES],
    description="After okr_raw lands rows, refreshes exactly the okr_processed partitions they "
                "touch; after okr_processed changes, the okr_curated quarters it feeds; after "
                "okr_curated changes, the same okr_features quarters.",
)
def okr_refresh_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    cursor = {"raw": 0, "processed": 0, "curated": 0, **(json.loads(context.cursor) if context.cursor else {})}
    requests: list[RunRequest] = []
    day_keys = daily_partitions.get_partition_keys()
    quarter_keys = quarterly_partitions.get_partition_keys()

    # (stage, upstream asset, which of its new records to take now and the partitions they touch,
    # assets to refresh, their partition keys)
    stages = (
        ("raw", OKR_RAW, _raw_partitions, [OKR_PROCESSED, OKR_REJECTS], day_keys),
        ("processed", OKR_PROCESSED, _processed_quarters, [OKR_CURATED], quarter_keys),
        ("curated", OKR_CURATED, _own_partitions, [OKR_FEATURES], quarter_keys),
    )
    for stage, upstream, partitions_of, targets, all_keys in stages:
        records = list(context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=upstream, after_storage_id=cursor[stage]),
            limit=_BATCH, ascending=True,
        ).records)
        records, keys = partitions_of(context, records)
        if not records:
            continue
        ranges = contiguous_ranges(sorted(keys), all_keys)
        dropped = keys - {k for k in all_keys}
        if dropped:
            context.log.warning(f"{stage}: partitions outside the partition set ignored: {sorted(dropped)}")
        first, last = records[0].storage_id, records[-1].storage_id
        waiting = _waiting_ranges(context.instance, targets[0])
        covered = [(a, b) for a, b in ranges if any(qa <= a and b <= qb for qa, qb in waiting)]
        if covered:
            context.log.info(f"{stage}: {len(covered)} range(s) already waiting in the run queue: {covered}")
        for start, end in ranges:
            if (start, end) in covered:
                continue
            requests.append(range_request(
                targets, start, end, run_key=f"{stage}:{first}-{last}:{start}..{end}",
                reason=f"new {upstream.to_user_string()} materializations {first}-{last}"))
        cursor[stage] = last
        context.log.info(f"{stage}: {len(records)} new materialization(s) -> "
                         f"{len(ranges)} run(s) over {len(keys)} partition(s)")
    if not requests:
        return SensorResult(skip_reason=SkipReason("no new okr_raw, okr_processed or okr_curated data to cascade"),
                            cursor=json.dumps(cursor))
    return SensorResult(run_requests=requests, cursor=json.dumps(cursor))
