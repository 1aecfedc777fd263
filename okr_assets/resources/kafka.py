"""Kafka access for the streaming path: offsets, exact-range reads, and update notifications.

No consumer groups anywhere: partitions are assigned and offsets sought explicitly, so nothing
waits on group rebalances and the Dagster sensor cursor is the only offset bookkeeping.
kafka-python is imported inside the methods (it is not needed to load the code location).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from pydantic import Field

if TYPE_CHECKING:
    from kafka import KafkaConsumer, KafkaProducer


# How long a tick may spend confirming the last offset of each partition (reading its last
# batch): the tick stays bounded however fast producers send.
_TAIL_READ_SECONDS = 0.5


class BrokerUnavailableError(RuntimeError):
    """The broker could not be reached within the configured timeout."""


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(frozen=True)
class RangeRead:
    """What reading an exact offset range gave: its messages, and the sub-ranges
    (``start``, ``end`` exclusive) the broker no longer held."""

    messages: list[Message]
    lost: list[tuple[int, int]]


def unreadable_span(position: int, end: int, log_start: int, log_end: int) -> tuple[int, int] | None:
    """The offsets from ``position`` on (up to ``end``) that a partition whose log holds
    ``log_start`` .. ``log_end - 1`` can never return, or None while ``position`` is in the log.

    Below the log start: deleted by retention, up to the log start. At or beyond the log end:
    the broker lost its data (offsets it once reported are gone), up to ``end``.
    """
    if position >= end:
        return None
    if log_start > position:
        return position, min(log_start, end)
    if log_end <= position:
        return position, end
    return None


class KafkaResource(ConfigurableResource):
    """Connection settings for the check-in stream (all overridable by environment variables)."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port]")
    ingest_topic: str = Field(default="okr_raw_ingest", description="Topic carrying check-in messages.")
    updates_topic: str = Field(default="okr_processed_updates",
                               description="Topic receiving one notification per refreshed partition.")
    client_id: str = Field(default="okr-assets")
    security_protocol: str = Field(default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    sasl_mechanism: str | None = Field(default=None, description="e.g. PLAIN, SCRAM-SHA-512")
    sasl_username: str | None = Field(default=None)
    sasl_password: str | None = Field(default=None)
    ssl_cafile: str | None = Field(default=None)
    timeout_ms: int = Field(default=3000, description="Bootstrap and request timeout; a down broker "
                                                      "fails a sensor tick within about this long.")
    max_message_bytes: int = Field(default=64 * 1024, description="Larger messages are rejected.")
    publish_updates: bool = Field(default=True, description="Publish a notification per refreshed "
                                                            "okr_processed partition to updates_topic.")

    # -- clients -------------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": max(self.timeout_ms, 1000),
            "bootstrap_timeout_ms": self.timeout_ms,
        }
        if self.sasl_mechanism:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options

    @contextmanager
    def consumer(self) -> Iterator[KafkaConsumer]:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        try:
            # auto_offset_reset="none": an offset the broker no longer holds raises instead of
            # silently moving the read to another offset; nothing is read but what was asked for.
            consumer = KafkaConsumer(**self._common(), group_id=None, enable_auto_commit=False,
                                     auto_offset_reset="none", fetch_max_wait_ms=100)
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
        try:
            yield consumer
        finally:
            consumer.close()

    @contextmanager
    def producer(self, **overrides: Any) -> Iterator[KafkaProducer]:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            producer = KafkaProducer(**{**self._common(), "acks": "all", **overrides})
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
        try:
            yield producer
        finally:
            producer.flush()
            producer.close()

    def ensure_topics(self, partitions: int = 3) -> None:
        """Create the ingest and updates topics if missing (deployments usually pre-create them)."""
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError

        try:
            admin = KafkaAdminClient(**self._common())
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
        try:
            existing = set(admin.list_topics())
            missing = [NewTopic(t, partitions, 1) for t in (self.ingest_topic, self.updates_topic)
                       if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently
                    admin.create_topics(missing)
        finally:
            admin.close()

    # -- offsets and reads ---------------------------------------------------------------------

    def end_offsets(self, topic: str) -> dict[int, tuple[int, int]]:
        """(beginning, end) offsets of every partition of ``topic``; {} when it does not exist.

        The end offset is confirmed by reading the last record batch: some brokers report a
        batch's base offset + 1 as the end while the batch holds more records, and landing must
        not leave a batch's tail behind until the next message arrives. That read takes at most
        ``_TAIL_READ_SECONDS``, whatever the producers do meanwhile.
        """
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        with self.consumer() as consumer:
            try:
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    return {}
                tps = [TopicPartition(topic, p) for p in sorted(partitions)]
                return self._offsets(consumer, tps)
            except KafkaError as exc:
                raise BrokerUnavailableError(f"Kafka at {self.bootstrap_servers}: {exc}") from exc

    def _offsets(self, consumer: KafkaConsumer, tps: list[Any]) -> dict[int, tuple[int, int]]:
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        last = self._last_offsets(consumer, {tp: ends[tp] - 1 for tp in tps if ends[tp] > begins[tp]})
        return {tp.partition: (begins[tp], max(ends[tp], last.get(tp, -1) + 1)) for tp in tps}

    def _last_offsets(self, consumer: KafkaConsumer, starts: dict[Any, int]) -> dict[Any, int]:
        """The last offset of every given partition, reading from ``starts`` (the reported end - 1).

        A fetch returns whole record batches, so the first records a partition returns from its
        reported end - 1 include the rest of that batch: the partition is done then (paused),
        without waiting for silence, which never comes under a steady stream. All partitions are
        read together, within ``_TAIL_READ_SECONDS``; a partition that returns nothing in time
        (its last offset a transaction marker, or deleted meanwhile) keeps its reported end.
        """
        import time

        from kafka.errors import OffsetOutOfRangeError

        if not starts:
            return {}
        consumer.assign(list(starts))
        for tp, start in starts.items():
            consumer.seek(tp, start)
        last = dict(starts)
        waiting = set(starts)
        deadline = time.monotonic() + _TAIL_READ_SECONDS
        while waiting and (left := deadline - time.monotonic()) > 0:
            try:
                polled = consumer.poll(timeout_ms=max(1, int(left * 1000)), max_records=100_000)
            except OffsetOutOfRangeError:
                break  # the tail was deleted meanwhile: the reported ends stand
            for tp, records in polled.items():
                if records and tp in waiting:
                    last[tp] = max(last[tp], records[-1].offset)
                    waiting.discard(tp)
                    consumer.pause(tp)
        return last

    def read_range(self, topic: str, partition: int, start: int, end: int) -> RangeRead:
        """Messages with ``start <= offset < end`` of one partition (exactly that range), and the
        parts of the range the broker no longer holds.

        Nothing is ever read from an offset other than the one asked for: an offset the broker
        deleted (retention) or lost is not skipped silently but returned in ``lost``, and the
        read goes on from the broker's log start. A broker that is down or answers nothing
        raises ``BrokerUnavailableError`` (the run fails and the range is landed on a retry).
        """
        import time

        from kafka import TopicPartition
        from kafka.errors import KafkaError, OffsetOutOfRangeError

        tp = TopicPartition(topic, partition)
        out: list[Message] = []
        lost: list[tuple[int, int]] = []
        stalled_since: float | None = None
        with self.consumer() as consumer:
            try:
                consumer.assign([tp])
                consumer.seek(tp, start)
                # position() rather than the last offset seen: it also moves past offsets that
                # hold no record (transaction markers, compacted-away records).
                while (position := consumer.position(tp)) < end:
                    try:
                        records = consumer.poll(timeout_ms=1000, max_records=5000).get(tp, [])
                    except OffsetOutOfRangeError:
                        records = []  # the broker says the position is outside its log: see where it is
                    if records:
                        stalled_since = None
                        out.extend(Message(r.partition, r.offset, r.key, r.value, r.timestamp)
                                   for r in records if start <= r.offset < end)
                        continue
                    gone = self._gone_from(tp, position, end)
                    if gone is not None:
                        lost.append(gone)
                        if gone[1] >= end:
                            break
                        consumer.seek(tp, gone[1])
                        continue
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since > max(self.timeout_ms / 1000, 10):
                        raise BrokerUnavailableError(
                            f"{topic}/{partition}: offsets {position}..{end - 1} not readable within "
                            f"{max(self.timeout_ms / 1000, 10):.0f} s (the broker is down or not answering); "
                            "the range is landed when the run is retried")
            except KafkaError as exc:
                raise BrokerUnavailableError(f"Kafka at {self.bootstrap_servers}: {exc}") from exc
        return RangeRead(out, lost)

    def _gone_from(self, tp: Any, position: int, end: int) -> tuple[int, int] | None:
        """When a read stalls at ``position``: the offsets from there the broker can no longer
        return (``unreadable_span`` of its current log), or None when they are just not here yet."""
        with self.consumer() as probe:  # a consumer of its own: the reader keeps its assignment
            log_start, log_end = self._offsets(probe, [tp])[tp.partition]
        return unreadable_span(position, end, log_start, log_end)

    def publish_json(self, topic: str, key: str, payloads: list[dict[str, Any]]) -> None:
        """Send JSON messages and wait for every acknowledgement."""
        from kafka.errors import KafkaError

        try:
            with self.producer(max_block_ms=self.timeout_ms) as producer:
                futures = [producer.send(topic, key=key.encode(), value=json.dumps(body).encode())
                           for body in payloads]
                for future in futures:
                    future.get(timeout=max(self.timeout_ms / 1000, 1) * 3)
        except KafkaError as exc:
            raise BrokerUnavailableError(f"publishing to {topic!r} at {self.bootstrap_servers}: {exc}") from exc
