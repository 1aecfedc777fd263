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


# An empty poll this long ends the read of a partition's last batch (3x the fetch wait).
_TAIL_POLL_MS = 300


class BrokerUnavailableError(RuntimeError):
    """The broker could not be reached within the configured timeout."""


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


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
            consumer = KafkaConsumer(**self._common(), group_id=None, enable_auto_commit=False,
                                     auto_offset_reset="earliest", fetch_max_wait_ms=100)
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
        not leave a batch's tail behind until the next message arrives.
        """
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        with self.consumer() as consumer:
            try:
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    return {}
                tps = [TopicPartition(topic, p) for p in sorted(partitions)]
                ends = consumer.end_offsets(tps)
                begins = consumer.beginning_offsets(tps)
                last = self._last_offsets(consumer, {tp: ends[tp] - 1 for tp in tps if ends[tp] > begins[tp]})
                return {tp.partition: (begins[tp], max(ends[tp], last.get(tp, -1) + 1)) for tp in tps}
            except KafkaError as exc:
                raise BrokerUnavailableError(f"Kafka at {self.bootstrap_servers}: {exc}") from exc

    def _last_offsets(self, consumer: KafkaConsumer, starts: dict[Any, int]) -> dict[Any, int]:
        """The last offset of every given partition, reading from ``starts`` (the reported end - 1).

        All partitions are read together, so the tick pays one final empty poll, not one per
        partition (three partitions cost 3 s with a 1 s poll each). A fetch waits at most
        ``fetch_max_wait_ms`` (100 ms) on the broker, so an empty poll of ``_TAIL_POLL_MS`` means
        the batch holding ``start`` has been read to its end.
        """
        if not starts:
            return {}
        consumer.assign(list(starts))
        for tp, start in starts.items():
            consumer.seek(tp, start)
        last = dict(starts)
        while True:
            polled = consumer.poll(timeout_ms=min(_TAIL_POLL_MS, self.timeout_ms // 3), max_records=100_000)
            if not polled:
                return last
            for tp, records in polled.items():
                if records:
                    last[tp] = max(last[tp], records[-1].offset)

    def read_range(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        """Messages with ``start <= offset < end`` of one partition (exactly that range)."""
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        tp = TopicPartition(topic, partition)
        out: list[Message] = []
        with self.consumer() as consumer:
            try:
                consumer.assign([tp])
                consumer.seek(tp, start)
                empty_polls = 0
                # position() rather than the last offset seen: it also moves past offsets that
                # hold no record (transaction markers, compacted-away records).
                while consumer.position(tp) < end:
                    records = consumer.poll(timeout_ms=1000, max_records=5000).get(tp, [])
                    if not records:
                        empty_polls += 1
                        if empty_polls * 1000 > max(self.timeout_ms, 10_000):
                            raise BrokerUnavailableError(
                                f"{topic}/{partition}: offsets {consumer.position(tp)}..{end - 1} not readable "
                                "(deleted by retention, or the broker is down); the range cannot be landed")
                        continue
                    empty_polls = 0
                    out.extend(Message(r.partition, r.offset, r.key, r.value, r.timestamp)
                               for r in records if start <= r.offset < end)
            except KafkaError as exc:
                raise BrokerUnavailableError(f"Kafka at {self.bootstrap_servers}: {exc}") from exc
        return out

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
