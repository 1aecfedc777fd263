"""okr_kafka_sensor: land every Kafka check-in exactly once, closed-loop.

Each tick reads the topic's offsets (in bounded time, whatever the producers do), requests
landing runs for the new offset ranges, and compares what it requested before with what
``okr_raw.landed_offsets`` holds (written in the landing transaction) and what unfinished runs
will land: a range that a failed, cancelled or vanished run left behind is requested again under
a new run key, spaced out by ``Backoff`` while the cause lasts. Offsets the broker deleted
before they were read are recorded by the landing run as lost (and so accounted for).

A small tick's run (a trickle, at most ``OKR_KAFKA_REFRESH_TODAY_MAX_MESSAGES``) also refreshes
today's okr_processed partition after landing, in the same process: one run start and one
okr_refresh_sensor tick fewer between a check-in and its processed row (benchmarks/freshness.py).
okr_refresh_sensor skips that partition for the run's landing once the run has succeeded.
"""

import datetime as dt
import json
from dataclasses import dataclass, field

from dagster import (
    AssetObservation,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    RunConfig,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from okr_assets import settings
from okr_assets.defs.ingestion.assets import REFRESHES_PARTITION, KafkaRange, LandingConfig, okr_raw
from okr_assets.defs.reconciliation import Backoff, op_config, runs_in_flight
from okr_assets.defs.tables.assets import OKR_PROCESSED, OKR_RAW, OKR_REJECTS, process_checkins
from okr_assets.lib.ranges import advanced, uncovered
from okr_assets.resources import KafkaResource, WarehouseResource
from okr_assets.resources.kafka import BrokerUnavailableError
from okr_assets.resources.warehouse import WarehouseUnavailableError


@dataclass
class KafkaCursor:
    """Per partition of one topic incarnation (``epoch``): the next offset to request, and the
    offset below which everything is landed or recorded as lost (the landing ledger says so).
    Between the two lie offsets requested but not confirmed: in flight, or to be asked for again.
    ``backoff`` spaces the re-requests of missing ranges (kept only while a range is missing)."""

    topic: str
    epoch: int
    next: dict[int, int]
    landed: dict[int, int] = field(default_factory=dict)
    backoff: Backoff = field(default_factory=Backoff)

    @classmethod
    def load(cls, raw: str | None, topic: str) -> "KafkaCursor":
        if not raw:
            return cls(topic, 0, {})
        data = json.loads(raw)
        if data.get("topic") != topic:  # the configured topic changed: start over for it
            return cls(topic, 0, {})
        requested = {int(p): int(o) for p, o in data["next"].items()}
        # A cursor written before the landing ledger existed has no "landed": what it requested
        # counts as landed (the ledger holds nothing older to compare with).
        landed = {int(p): int(o) for p, o in data.get("landed", data["next"]).items()}
        return cls(topic, int(data["epoch"]), requested, landed, Backoff(dict(data.get("retry", {}))))

    def dump(self) -> str:
        return json.dumps({"topic": self.topic, "epoch": self.epoch,
                           "next": {str(p): o for p, o in sorted(self.next.items())},
                           "landed": {str(p): o for p, o in sorted(self.landed.items())},
                           "retry": self.backoff.dump()})


def plan_ranges(cursor: KafkaCursor, offsets: dict[int, tuple[int, int]],
                max_per_run: int) -> list[list[KafkaRange]]:
    """Split everything between the cursor and the end offsets into runs of at most
    ``max_per_run`` messages (a partition's range may span several runs)."""
    # From the next offset to request, even below the log start: the run records offsets deleted
    # before anyone read them as lost (a new partition starts at its log start).
    spans = [(p, cursor.next.get(p, begin), end) for p, (begin, end) in sorted(offsets.items())]
    return split_ranges(cursor.topic, cursor.epoch, spans, max_per_run)


def split_ranges(topic: str, epoch: int, spans: list[tuple[int, int, int]], max_per_run: int) -> list[list[KafkaRange]]:
    """(partition, start, end) spans as runs of at most ``max_per_run`` messages each."""
    runs: list[list[KafkaRange]] = []
    current: list[KafkaRange] = []
    budget = max_per_run
    for partition, start, end in spans:
        while start < end:
            size = min(end - start, budget)
            current.append(KafkaRange(topic=topic, partition=partition, start=start, end=start + size, epoch=epoch))
            start += size
            budget -= size
            if budget == 0:
                runs.append(current)
                current, budget = [], max_per_run
    if current:
        runs.append(current)
    return runs


def _describe(ranges: list[KafkaRange]) -> str:
    return ",".join(f"{r.partition}:{r.start}-{r.end - 1}" for r in ranges)


def in_flight_ranges(instance: DagsterInstance, topic: str, epoch: int) -> dict[int, list[tuple[int, int]]]:
    """Offset ranges of ``topic`` (incarnation ``epoch``) that unfinished landing runs will land."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for run in runs_in_flight(instance, {KAFKA_TOPIC_TAG: topic, KAFKA_EPOCH_TAG: str(epoch)}):
        for r in op_config(run, "okr_raw").get("kafka_ranges", []):
            ranges.setdefault(int(r["partition"]), []).append((int(r["start"]), int(r["end"])))
    return ranges


def missing_ranges(cursor: KafkaCursor, landed: dict[int, list[tuple[int, int]]],
                   in_flight: dict[int, list[tuple[int, int]]]) -> list[tuple[int, int, int]]:
    """Move each partition's landed watermark over what the ledger holds, and return the
    (partition, start, end) spans below the next offset to request that neither landed nor are
    in flight: what a failed, cancelled or vanished run left behind."""
    missing = []
    for partition, requested in sorted(cursor.next.items()):
        done = landed.get(partition, [])
        cursor.landed[partition] = advanced(cursor.landed.get(partition, requested), done)
        for start, end in uncovered(cursor.landed[partition], requested, [*done, *in_flight.get(partition, [])]):
            missing.append((partition, start, end))
    return missing


KAFKA_TOPIC_TAG, KAFKA_EPOCH_TAG = "okr/kafka_topic", "okr/kafka_epoch"
# SensorResult observation metadata on okr_raw: offsets the broker lost (okr_alert_sensor alerts).
OFFSETS_WENT_BACKWARDS = "kafka_offsets_went_backwards"


@sensor(
    name="okr_kafka_sensor",
    target=[okr_raw, process_checkins],
    minimum_interval_seconds=settings.kafka_sensor_interval(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Reads the end offsets of the check-in topic each tick and requests landing runs "
                "for exact offset ranges (capped per run); compares what was requested with what "
                "okr_raw.landed_offsets holds and what runs are in flight, and asks again for what a "
                "failed or cancelled run left behind. A small tick's run also refreshes today's "
                "okr_processed partition after landing.",
)
def okr_kafka_sensor(context: SensorEvaluationContext, kafka: KafkaResource,
                     warehouse: WarehouseResource) -> SensorResult | SkipReason:
    topic = kafka.ingest_topic
    cursor = KafkaCursor.load(context.cursor, topic)
    try:
        offsets = kafka.end_offsets(topic)
    except BrokerUnavailableError as exc:
        # Returning only a SkipReason leaves the cursor untouched: nothing is skipped for good.
        return SkipReason(f"Kafka broker unavailable, will retry next tick: {exc}")
    if not offsets:
        return SkipReason(f"topic {topic!r} does not exist (yet) at {kafka.bootstrap_servers}")

    went_back = {p: (cursor.next[p], end) for p, (_, end) in offsets.items()
                 if p in cursor.next and end < cursor.next[p]}
    if went_back:
        detail = ", ".join(f"partition {p}: end offset {end} < next offset {nxt}"
                           for p, (nxt, end) in sorted(went_back.items()))
        unconfirmed = {p: (cursor.landed.get(p, nxt), nxt) for p, nxt in cursor.next.items()
                       if cursor.landed.get(p, nxt) < nxt}
        message = (f"OFFSETS WENT BACKWARDS on {topic!r} ({detail}): the topic was recreated or the broker "
                   f"lost data. Messages landed before are kept; landing restarts from the beginning of "
                   f"every partition as topic epoch {cursor.epoch + 1} so new offsets cannot collide."
                   + (f" Requested but not confirmed landed: {_spans(unconfirmed)}." if unconfirmed else ""))
        context.log.error(message)
        reset = KafkaCursor(topic, cursor.epoch + 1, {})
        observation = AssetObservation(asset_key=OKR_RAW, metadata={
            OFFSETS_WENT_BACKWARDS: MetadataValue.json({
                "topic": topic, "epoch": cursor.epoch, "detail": detail,
                "unconfirmed": {str(p): list(span) for p, span in unconfirmed.items()}})})
        return SensorResult(skip_reason=SkipReason(message), cursor=reset.dump(), asset_events=[observation])

    for partition, (begin, _) in offsets.items():
        cursor.next.setdefault(partition, begin)
        cursor.landed.setdefault(partition, begin)
        if cursor.next[partition] < begin:
            context.log.error(
                f"{topic}/{partition}: offsets {cursor.next[partition]}..{begin - 1} were deleted by the "
                f"broker (retention) before they were requested; they are recorded as lost_before_landing")

    # Closed loop: what was requested but neither landed (the ledger) nor in flight is asked for
    # again. In-flight runs are read first: a run ending in between has committed its ledger rows.
    in_flight = in_flight_ranges(context.instance, topic, cursor.epoch)
    missing: list[tuple[int, int, int]] = []
    try:
        landed = warehouse.landed_offset_ranges(topic, cursor.epoch, cursor.landed)
        missing = missing_ranges(cursor, landed, in_flight)
        cursor.backoff.keep_only({f"{p}:{start}" for p, start, _ in missing})
    except WarehouseUnavailableError as exc:
        context.log.warning(f"cannot compare with what landed this tick ({exc}); new offsets are still "
                            "requested, and anything missing is asked for on a later tick")

    max_per_run = settings.kafka_max_messages_per_run()
    runs = plan_ranges(cursor, offsets, max_per_run)
    due = [(p, start, end) for p, start, end in missing if cursor.backoff.due(f"{p}:{start}")]
    if not runs and not due:
        waiting = f"; {len(missing)} missing range(s) wait for their next retry" if missing else ""
        return SensorResult(skip_reason=SkipReason(
            f"no new messages on {topic!r} (next offsets {cursor.next or 'start'}){waiting}"), cursor=cursor.dump())
    requests = []
    today = dt.datetime.now(dt.UTC).date().isoformat()
    for ranges in runs:
        refresh_today = len(runs) == 1 and _count(ranges) <= settings.kafka_refresh_today_max_messages()
        requests.append(_request(topic, cursor.epoch, ranges, today if refresh_today else None))
        for r in ranges:
            cursor.next[r.partition] = r.end
    if due:
        attempt = max(cursor.backoff.attempt(f"{p}:{start}") for p, start, _ in due)
        context.log.warning(f"{topic}: offsets requested before have not landed and no run is on them (a run "
                            f"failed, was cancelled or vanished): asking again for {_spans_list(due)} "
                            f"(attempt {attempt})")
        requests += [_request(topic, cursor.epoch, ranges, None, retry=attempt)
                     for ranges in split_ranges(topic, cursor.epoch, due, max_per_run)]
    total = sum(int(r.tags["okr/kafka_messages"]) for r in requests)
    context.log.info(f"requesting {len(requests)} landing run(s) for {total} message(s) on {topic!r}"
                     + (f", {len(due)} of them again" if due else ""))
    return SensorResult(run_requests=requests, cursor=cursor.dump())


def _count(ranges: list[KafkaRange]) -> int:
    return sum(r.end - r.start for r in ranges)


def _spans_list(spans: list[tuple[int, int, int]]) -> str:
    return ", ".join(f"partition {p}: {lo}..{hi - 1}" for p, lo, hi in spans)


def _spans(spans: dict[int, tuple[int, int]]) -> str:
    return ", ".join(f"partition {p}: {lo}..{hi - 1}" for p, (lo, hi) in sorted(spans.items()))


def _request(topic: str, epoch: int, ranges: list[KafkaRange], refresh_partition: str | None,
             retry: int = 0) -> RunRequest:
    """A landing run for exact offset ranges; with ``refresh_partition`` (a trickle) it also
    refreshes that okr_processed partition after landing, in the same process."""
    described = _describe(ranges)
    # dagster/priority: new check-ins start before queued curated/feature/ML runs (freshness)
    tags = {"okr/source": "kafka", "okr/lane": "landing:kafka", "dagster/priority": "10",
            KAFKA_TOPIC_TAG: topic, KAFKA_EPOCH_TAG: str(epoch),
            "okr/kafka_offsets": described[:200], "okr/kafka_messages": str(_count(ranges))}
    if retry:
        tags["okr/trigger"] = f"repair: not landed by an earlier run (attempt {retry})"
    if refresh_partition:
        tags[REFRESHES_PARTITION] = refresh_partition
    return RunRequest(
        # A new key per attempt: Dagster launches a run key once.
        run_key=f"kafka:{topic}:e{epoch}:{described}" + (f":retry{retry}" if retry else ""),
        run_config=RunConfig(ops={"okr_raw": LandingConfig(kafka_ranges=ranges)}),
        asset_selection=[OKR_RAW, OKR_PROCESSED, OKR_REJECTS] if refresh_partition else [OKR_RAW],
        partition_key=refresh_partition,  # the partitioned assets' key; okr_raw has none
        tags=tags,
    )
