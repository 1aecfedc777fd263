"""okr_kafka_sensor: land new Kafka check-ins as exact offset ranges, exactly once.

A small tick's run (a trickle, at most ``OKR_KAFKA_REFRESH_TODAY_MAX_MESSAGES``) also refreshes
today's okr_processed partition after landing, in the same process: one run start and one
okr_refresh_sensor tick fewer between a check-in and its processed row (benchmarks/freshness.py).
okr_refresh_sensor skips that partition for the run's landing once the run has succeeded.
"""

import datetime as dt
import json
from dataclasses import dataclass

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
from okr_assets.defs.ingestion.assets import REFRESHES_PARTITION, KafkaRange, LandingConfig, okr_raw
from okr_assets.defs.tables.assets import OKR_PROCESSED, OKR_RAW, OKR_REJECTS, process_checkins
from okr_assets.resources import KafkaResource
from okr_assets.resources.kafka import BrokerUnavailableError


@dataclass
class KafkaCursor:
    """Next offset to land per partition, for one topic incarnation (``epoch``)."""

    topic: str
    epoch: int
    next: dict[int, int]

    @classmethod
    def load(cls, raw: str | None, topic: str) -> "KafkaCursor":
        if not raw:
            return cls(topic, 0, {})
        data = json.loads(raw)
        if data.get("topic") != topic:  # the configured topic changed: start over for it
            return cls(topic, 0, {})
        return cls(topic, int(data["epoch"]), {int(p): int(o) for p, o in data["next"].items()})

    def dump(self) -> str:
        return json.dumps({"topic": self.topic, "epoch": self.epoch,
                           "next": {str(p): o for p, o in sorted(self.next.items())}})


def plan_ranges(cursor: KafkaCursor, offsets: dict[int, tuple[int, int]],
                max_per_run: int) -> list[list[KafkaRange]]:
    """Split everything between the cursor and the end offsets into runs of at most
    ``max_per_run`` messages (a partition's range may span several runs)."""
    runs: list[list[KafkaRange]] = []
    current: list[KafkaRange] = []
    budget = max_per_run
    for partition, (begin, end) in sorted(offsets.items()):
        start = max(cursor.next.get(partition, begin), begin)
        while start < end:
            size = min(end - start, budget)
            current.append(KafkaRange(topic=cursor.topic, partition=partition, start=start,
                                      end=start + size, epoch=cursor.epoch))
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


@sensor(
    name="okr_kafka_sensor",
    target=[okr_raw, process_checkins],
    minimum_interval_seconds=settings.kafka_sensor_interval(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Reads the end offsets of the check-in topic each tick and requests landing runs "
                "for exact offset ranges (capped per run); the cursor holds the next offset per partition. "
                "A small tick's run also refreshes today's okr_processed partition after landing.",
)
def okr_kafka_sensor(context: SensorEvaluationContext, kafka: KafkaResource) -> SensorResult | SkipReason:
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
        message = (f"OFFSETS WENT BACKWARDS on {topic!r} ({detail}): the topic was recreated or the broker "
                   f"lost data. Messages landed before are kept; landing restarts from the beginning of "
                   f"every partition as topic epoch {cursor.epoch + 1} so new offsets cannot collide.")
        context.log.error(message)
        reset = KafkaCursor(topic, cursor.epoch + 1, {})
        return SensorResult(skip_reason=SkipReason(message), cursor=reset.dump())

    for partition, (begin, _) in offsets.items():
        if cursor.next.get(partition, begin) < begin:
            context.log.error(
                f"{topic}/{partition}: offsets {cursor.next[partition]}..{begin - 1} were deleted by the "
                f"broker (retention) before they were landed; landing continues at {begin}")

    runs = plan_ranges(cursor, offsets, settings.kafka_max_messages_per_run())
    if not runs:
        return SkipReason(f"no new messages on {topic!r} (next offsets {cursor.next or 'start'})")
    requests = []
    today = dt.datetime.now(dt.UTC).date().isoformat()
    for ranges in runs:
        described = _describe(ranges)
        messages = sum(r.end - r.start for r in ranges)
        # dagster/priority: new check-ins start before queued curated/feature/ML runs (freshness)
        tags = {"okr/source": "kafka", "okr/lane": "landing:kafka", "dagster/priority": "10",
                "okr/kafka_topic": topic, "okr/kafka_epoch": str(cursor.epoch),
                "okr/kafka_offsets": described[:200], "okr/kafka_messages": str(messages)}
        refresh_today = len(runs) == 1 and messages <= settings.kafka_refresh_today_max_messages()
        requests.append(RunRequest(
            run_key=f"kafka:{topic}:e{cursor.epoch}:{described}",
            run_config=RunConfig(ops={"okr_raw": LandingConfig(kafka_ranges=ranges)}),
            asset_selection=[OKR_RAW, OKR_PROCESSED, OKR_REJECTS] if refresh_today else [OKR_RAW],
            partition_key=today if refresh_today else None,  # the partitioned assets' key; okr_raw has none
            tags={**tags, REFRESHES_PARTITION: today} if refresh_today else tags,
        ))
        for r in ranges:
            cursor.next[r.partition] = r.end
    for partition, (begin, _) in offsets.items():
        cursor.next.setdefault(partition, begin)
    total = sum(int(r.tags["okr/kafka_messages"]) for r in requests)
    context.log.info(f"requesting {len(requests)} landing run(s) for {total} message(s) on {topic!r}")
    return SensorResult(run_requests=requests, cursor=cursor.dump())
