"""okr_refresh_sensor: refresh exactly the partitions that new data touched.

A cascade over materialization events, not over time:
- each new ``okr_raw`` materialization (file or Kafka landing) lists the okr_processed
  partitions its rows touch (late check-ins for old dates included) -> one run per contiguous
  range of those days, less the partition a Kafka trickle run refreshed itself (decided once
  that run has finished: it refreshes after landing);
- each new ``okr_processed`` materialization lists the cycle quarters its rows belong to ->
  one okr_curated run per contiguous range of quarters;
- each new ``okr_curated`` partition -> the same okr_features quarter.
Only materializations whose blocking checks passed are followed (write-audit-publish emits none
for a range that fails). Closed loop: every range requested, or left to a queued run that covers
it, stays in the cursor until a run working on it succeeds; one that fails, is cancelled or never
starts is requested again (spaced out by ``Backoff``), except after a failed blocking check, which
is alerted and needs a person. A partition outside the partition sets is reported as an
observation of the target asset, which okr_alert_sensor alerts on.
Declarative automation cannot express this: which curated quarter a check-in day feeds depends on
the data (its cycle_start), not on a fixed partition mapping.
"""


import json
import time
from dataclasses import asdict, dataclass

from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    MetadataValue,
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
from okr_assets.defs.reconciliation import Backoff
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
# Every refresh run the sensor requests carries its request key; Dagster's automatic retries
# copy it, so the sensor finds every run working on a request.
REQUEST_TAG = "okr/request"
# Observation metadata on a target asset: partitions the cascade could not request (alerted).
UNREQUESTABLE = "unrequestable_partitions"
# A request with no run after this long never got one (the daemon creates runs right after a tick).
_VANISHED_AFTER_SECONDS = 120


def range_request(assets: list[AssetKey], start: str, end: str, run_key: str, reason: str) -> RunRequest:
    """A run over an inclusive partition key range (one run, thanks to single-run backfill policy).

    Each asset has its own lane (``okr/lane``, limited to one run at a time in ``dagster.yaml``), so
    refreshes of the same partitions apply in the order they were requested."""
    target = assets[0].to_user_string()
    return RunRequest(
        run_key=run_key,
        asset_selection=assets,
        tags={RANGE_START: start, RANGE_END: end, "okr/trigger": reason,
              "okr/lane": f"refresh:{target}", REFRESH_TARGET: target, REQUEST_TAG: run_key,
              # okr_processed is on the path from a new check-in to a queryable row: it is
              # dequeued before curated, feature and ML runs (benchmarks/freshness.py)
              **({"dagster/priority": "10"} if assets[0] == OKR_PROCESSED else {})},
    )


def _waiting_runs(instance: DagsterInstance, target: AssetKey) -> list[DagsterRun]:
    """Refresh runs of ``target`` that are queued and have not started: they will read the newest
    upstream data when they start, so a new request inside one of their ranges is redundant."""
    runs = instance.get_runs(filters=RunsFilter(
        statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED],
        tags={REFRESH_TARGET: target.to_user_string()}))
    return [r for r in runs if RANGE_START in r.tags]


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
    the first one whose landing run is still refreshing a partition itself. A landing
    materialization lists only rows that committed, each batch checked before its commit, so
    every one is followed (also when a later batch of its run failed its check)."""
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


def _published(context: SensorEvaluationContext, records: list, asset: AssetKey) -> list:
    """The records whose run did not fail a blocking check of ``asset``: only what passed its
    checks is cascaded (write-audit-publish emits no materialization for a failing range; this
    also holds for materializations reported any other way)."""
    failed_runs = set()
    for run_id in {r.run_id for r in records if r.run_id}:
        for event in context.instance.get_records_for_run(
                run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
            evaluation = event.event_log_entry.get_dagster_event().asset_check_evaluation_data
            if evaluation.asset_key == asset and evaluation.blocking and not evaluation.passed:
                failed_runs.add(run_id)
    kept = [r for r in records if r.run_id not in failed_runs]
    if len(kept) < len(records):
        context.log.warning(f"{asset.to_user_string()}: {len(records) - len(kept)} materialization(s) of runs "
                            "whose blocking checks failed are not cascaded")
    return kept


def _processed_quarters(context: SensorEvaluationContext, records: list) -> tuple[list, set[str]]:
    """The curated quarters each okr_processed materialization lists as touched."""
    kept = _published(context, records, OKR_PROCESSED)
    return records, {key for r in kept for key in _json_list(r.asset_materialization.metadata, TOUCHED_QUARTERS)}


def _own_partitions(context: SensorEvaluationContext, records: list) -> tuple[list, set[str]]:
    """The materialized partitions themselves (okr_curated -> the same okr_features quarters)."""
    return records, {r.asset_materialization.partition for r in _published(context, records, OKR_CURATED)}


@dataclass
class _Pending:
    """A range the sensor asked to refresh, or left to a queued run covering it, until a run
    working on it succeeds: a run that fails (other than on a blocking check: that needs a
    person, and is alerted), is cancelled or never appears leaves it to be requested again."""

    stage: str
    start: str
    end: str
    request: str | None = None  # the okr/request tag of the runs working on it
    run_id: str | None = None  # or the queued run (without the tag) that covers it
    at: float = 0.0  # when it was requested or deferred
    attempt: int = 0

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.start}..{self.end}"


def _outcome(instance: DagsterInstance, pending: _Pending, now: float) -> str:
    """``done``, ``waiting`` or ``again`` for a pending range."""
    if pending.request:
        runs = list(instance.get_runs(filters=RunsFilter(tags={REQUEST_TAG: pending.request})))
    else:
        run = instance.get_run_by_id(pending.run_id) if pending.run_id else None
        runs = [run] if run is not None else []
    if any(r.status == DagsterRunStatus.SUCCESS for r in runs):
        return "done"
    if any(not r.is_finished for r in runs):
        return "waiting"
    if not runs:
        return "again" if now - pending.at >= _VANISHED_AFTER_SECONDS else "waiting"
    for run in runs:
        for event in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
            evaluation = event.event_log_entry.get_dagster_event().asset_check_evaluation_data
            if evaluation.blocking and not evaluation.passed:
                return "done"  # a check failed: the run failure and check alerts ask a person
    return "again"


@sensor(
    name="okr_refresh_sensor",
    minimum_interval_seconds=settings.refresh_sensor_interval(),
    default_status=DefaultSensorStatus.RUNNING,
    asset_selection=[OKR_PROCESSED, OKR_REJECTS, OKR_CURATED, OKR_FEATURES],
    description="After okr_raw lands rows, refreshes exactly the okr_processed partitions they "
                "touch; after okr_processed changes, the okr_curated quarters it feeds; after "
                "okr_curated changes, the same okr_features quarters. A range whose run fails, is "
                "cancelled or never starts is requested again.",
)
def okr_refresh_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    saved = json.loads(context.cursor) if context.cursor else {}
    cursor = {"raw": 0, "processed": 0, "curated": 0, **{k: v for k, v in saved.items() if k in STAGES}}
    pending = [_Pending(**p) for p in saved.get("pending", [])]
    backoff = Backoff(dict(saved.get("retry", {})))
    requests: list[RunRequest] = []
    observations: list[AssetObservation] = []
    day_keys = daily_partitions.get_partition_keys()
    quarter_keys = quarterly_partitions.get_partition_keys()
    targets_of = {stage: targets for stage, _, _, targets, _ in _stages()}
    now = time.time()

    # Ranges requested or deferred earlier whose runs did not get them done: requested again.
    still: list[_Pending] = []
    for item in pending:
        outcome = _outcome(context.instance, item, now)
        if outcome == "waiting":
            still.append(item)
        elif outcome == "again" and backoff.due(item.key, now):
            attempt = backoff.attempt(item.key, now)
            key = f"{item.stage}:{item.start}..{item.end}:again{attempt}:{int(now)}"
            context.log.warning(f"{item.stage}: the run for {item.start}..{item.end} failed, was cancelled or never "
                                f"started; requesting the range again (attempt {attempt})")
            requests.append(range_request(targets_of[item.stage], item.start, item.end, run_key=key,
                                          reason=f"repair: {item.stage} range not refreshed (attempt {attempt})"))
            still.append(_Pending(item.stage, item.start, item.end, request=key, at=now, attempt=attempt))
        elif outcome == "again":
            still.append(item)
    pending = still

    for stage, upstream, partitions_of, targets, all_keys in _stages(day_keys, quarter_keys):
        records = list(context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=upstream, after_storage_id=cursor[stage]),
            limit=_BATCH, ascending=True,
        ).records)
        records, keys = partitions_of(context, records)
        if not records:
            continue
        ranges = contiguous_ranges(sorted(keys), all_keys)
        dropped = sorted(keys - set(all_keys))
        if dropped:
            context.log.error(f"{stage}: {len(dropped)} partition(s) of {targets[0].to_user_string()} outside its "
                              f"partition set cannot be refreshed: {dropped}")
            observations.append(AssetObservation(asset_key=targets[0], metadata={
                UNREQUESTABLE: MetadataValue.json(dropped), "upstream": upstream.to_user_string(),
                "reason": "outside the partition set (OKR_FIRST_PARTITION and the partition definitions)"}))
        first, last = records[0].storage_id, records[-1].storage_id
        waiting = _waiting_runs(context.instance, targets[0])
        for start, end in ranges:
            cover = next((r for r in waiting if r.tags[RANGE_START] <= start and end <= r.tags[RANGE_END]), None)
            if cover is not None:
                context.log.info(f"{stage}: {start}..{end} is covered by queued run {cover.run_id[:8]}")
                pending.append(_Pending(stage, start, end, request=cover.tags.get(REQUEST_TAG),
                                        run_id=None if REQUEST_TAG in cover.tags else cover.run_id, at=now))
                continue
            key = f"{stage}:{first}-{last}:{start}..{end}"
            requests.append(range_request(targets, start, end, run_key=key,
                                          reason=f"new {upstream.to_user_string()} materializations {first}-{last}"))
            pending.append(_Pending(stage, start, end, request=key, at=now))
        cursor[stage] = last
        context.log.info(f"{stage}: {len(records)} new materialization(s) -> "
                         f"{len(ranges)} range(s) over {len(keys)} partition(s)")
    backoff.keep_only({p.key for p in pending})
    state = json.dumps({**cursor, "pending": [asdict(p) for p in pending], "retry": backoff.dump()})
    if not requests:
        return SensorResult(skip_reason=SkipReason("no new okr_raw, okr_processed or okr_curated data to cascade"
                                                   + (f"; {len(pending)} range(s) in flight" if pending else "")),
                            cursor=state, asset_events=observations)
    return SensorResult(run_requests=requests, cursor=state, asset_events=observations)


STAGES = ("raw", "processed", "curated")


def _stages(day_keys: list[str] | None = None, quarter_keys: list[str] | None = None) -> list[tuple]:
    """(stage, upstream asset, which of its new records to take now and the partitions they
    touch, assets to refresh, their partition keys)."""
    return [
        ("raw", OKR_RAW, _raw_partitions, [OKR_PROCESSED, OKR_REJECTS], day_keys),
        ("processed", OKR_PROCESSED, _processed_quarters, [OKR_CURATED], quarter_keys),
        ("curated", OKR_CURATED, _own_partitions, [OKR_FEATURES], quarter_keys),
    ]
