"""Router: submit topic -> out.<provider>, in Kafka transactions.

Consume a batch, route each message, produce the results and the consumed
offsets in one transaction: after a crash a batch is either wholly routed or
not at all, so nothing is lost and nothing is routed twice (invariant 3).
A message with no route becomes a failure receipt for its customer.

The router is also where the parts of a multipart message meet (they share a
key, so a partition): it assembles them (smsgw.assembly), writes the parts it
holds to the compacted ``multipart`` changelog in the same transaction, and
routes the whole message once as one record. On assignment of a partition it
rebuilds that partition's held parts from the changelog before routing
anything from it; incomplete messages expire with failure receipts.

A message is routed only if the chosen provider can still take it: one past
its expiry (validity period or maximum age, smsgw.validity) ends EXPIRED
(err:903), one whose submit_sm would exceed the provider's maximum PDU size
fails (err:907) rather than being sent to be dropped.

Withdrawals (smsgw.server.withdraw): a message whose withdrawal marker is in
the same batch is not routed (final state REJECTED, reason "withdrawn", no
receipt: the customer was answered with an error and has no id for it). A
marker arriving after its message was routed is forwarded to that provider's
topic (same key, so after the message), where the bind drops the message if
it has not sent it; the router remembers where it sent the messages that can
have one ("late": read more than the produce timeout after acceptance).

Every decision above lives in smsgw.pipeline.routing_logic (sans-IO); this
class reads, writes and commits.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from smsgw import log
from smsgw.assembly import ChangelogValue, decode_changelog
from smsgw.kafka.admin import ensure_topic_names
from smsgw.kafka.consumer import IDLE_WAIT_S, LONG_WAIT_S, AsyncConsumer, consumer_config
from smsgw.kafka.dlq import UNDECODABLE, DeadLetters
from smsgw.kafka.security import client_config
from smsgw.kafka.transactions import TransactionalProducer, bounded
from smsgw.message import late_after_s
from smsgw.pipeline.routing_logic import (
    Out,
    RouterConfig,
    RoutingLogic,
    submit_octets,
)
from smsgw.topics import Topics

__all__ = ["Out", "Router", "RouterConfig", "submit_octets"]

RESTORE_TIMEOUT_S = 60.0
# A partition's leader moving (a broker stopped, a rolling restart) answers a
# watermark query with one of these for a moment: asked again, not a crash of
# the router (it was, once per restart: a rebalance of the whole stage).
LEADER_MOVING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.OFFSET_NOT_AVAILABLE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)
WATERMARK_RETRY_S = 0.2
CLOSE_TIMEOUT_S = 30.0
# A transaction costs the broker a marker on every partition it touched; at a
# few hundred msg/s, one per fetched batch meant ~100 a second. Gathering for
# this long first keeps it near 1/TXN_INTERVAL_S at the cost of that much
# routing delay (never of acceptance: the customer's resp does not wait).
TXN_INTERVAL_S = 0.05


class Router:
    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        config: RouterConfig,
        *,
        transactional_id: str,
        outbound_partitions: int = 6,
        multipart_expiry_s: float = 600.0,
        message_ttl_s: float = 86400.0,
        produce_timeout_s: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.config = config
        self.outbound_partitions = outbound_partitions
        self.producer = TransactionalProducer(
            client_config(
                bootstrap,
                {
                    "transactional.id": transactional_id,
                    "linger.ms": 2,
                    "compression.type": "lz4",
                    "transaction.timeout.ms": 30000,
                },
            )
        )
        self.producer.init()  # first: a consumer is not left behind if this fails
        self.consumer = AsyncConsumer(
            consumer_config(bootstrap, f"{topics.prefix}router"),
            [topics.submit],
            on_assign=self._assigned,
            on_revoke=self._revoked,
        )
        self.dead_letters = DeadLetters(bootstrap, topics, "router")
        self.log = log.get("smsgw.router")
        self.logic = RoutingLogic(
            topics,
            config,
            multipart_expiry_s=multipart_expiry_s,
            message_ttl_s=message_ttl_s,
            late_after_s=late_after_s(produce_timeout_s),
            logger=self.log,
        )
        self.assembler = self.logic.assembler
        self.counts = self.logic.counts
        self.final = self.logic.final  # "STATE|reason" (count_final)
        self.no_route_by_customer = self.logic.no_route_by_customer
        self._to_restore: set[int] = set()
        self._known_topics: set[str] = set()

    def _assigned(self, parts: list[TopicPartition]) -> None:
        self._to_restore |= {p.partition for p in parts}

    def _revoked(self, parts: list[TopicPartition]) -> None:
        gone = {p.partition for p in parts}
        self._to_restore -= gone
        self.logic.revoked(gone)

    async def run(self, stop: asyncio.Event) -> None:
        last_expiry = time.monotonic()
        try:
            while not stop.is_set():
                batch = await self._gather(stop)
                if self._to_restore:
                    await self._restore()
                if batch or self.logic.ready:
                    await self._route_batch(batch)
                if time.monotonic() - last_expiry >= 1.0:
                    last_expiry = time.monotonic()
                    out = self.logic.expire(time.time())
                    if out:
                        await self._commit(out, {})
        finally:
            self.producer.close()
            try:  # without its coordinator a consumer's close can wait forever (librdkafka #3740)
                # No commit: the router's offsets go in its transactions.
                await bounded(lambda: self.consumer.close(False), CLOSE_TIMEOUT_S, "router-close")
            except TimeoutError:
                self.log.warning("consumer not closed in time; left to its session timeout")

    async def _gather(self, stop: asyncio.Event, limit: int = 2000) -> list[Message]:
        """Records for one transaction: what arrives within TXN_INTERVAL_S of the first."""
        batch = await self.consumer.batch(limit, self._wait_s(), stop)
        if not batch:
            return batch
        deadline = time.monotonic() + TXN_INTERVAL_S
        while len(batch) < limit and not stop.is_set() and not self._to_restore:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self.consumer.consumer.consume(limit - len(batch), 0)
            batch += self.consumer.accept(more)
            if not more:
                await asyncio.sleep(min(left, 0.01))
        return batch

    def _wait_s(self) -> float:
        """Parts held expire on the 1-s check in ``run``; with none, nothing is due
        but the next record (or the stop), which ends the wait."""
        return IDLE_WAIT_S if len(self.logic.assembler) or self.logic.ready else LONG_WAIT_S

    # ------------------------------------------------------------ routing
    async def _route_batch(self, batch: list[Message]) -> None:
        decision = self.logic.route_batch(
            [(msg.partition() or 0, msg.value() or b"") for msg in batch], time.time()
        )
        for i, exc in decision.bad:
            self.dead_letters.put(batch[i], exc)
        offsets: dict[tuple[str, int], int] = {}
        for msg in batch:
            key = (msg.topic() or "", msg.partition() or 0)
            offsets[key] = max(offsets.get(key, 0), (msg.offset() or 0) + 1)
        await self._commit(decision.out, offsets)
        for msg in batch:
            self.consumer.done(msg)

    async def _commit(self, out: list[Out], offsets: dict[tuple[str, int], int]) -> None:
        needed = {t for t, _, _, _ in out} - self._known_topics
        if needed:
            await asyncio.to_thread(
                ensure_topic_names, self.bootstrap, needed, self.outbound_partitions
            )
            self._known_topics |= needed
        # A failed transaction raises (aborted, stuck or fatal): the router restarts and
        # re-reads from its committed offsets (smsgw.kafka.transactions).
        await self.producer.commit(out, offsets, self.consumer.consumer.consumer_group_metadata())

    # ------------------------------------------------------------ restore
    async def _restore(self) -> None:
        """Rebuild held parts of newly assigned partitions from the changelog."""
        partitions = sorted(self._to_restore)
        self._to_restore.clear()
        records = await asyncio.to_thread(self._read_changelog, partitions)
        before = len(self.assembler)
        self.logic.restore(records)
        if records:
            self.log.info(
                "multipart state restored",
                partitions=partitions,
                records=len(records),
                messages=len(self.assembler) - before,
            )

    def _read_changelog(self, partitions: list[int]) -> list[tuple[int, bytes, ChangelogValue]]:
        """The committed changelog of `partitions`, from the start to its end.

        Asking for the group's committed submit offsets first waits until the
        previous owner's last transaction is resolved (read_committed offset
        fetches are "stable"); reading up to the high watermark then includes
        that transaction's changelog records or its abort.
        """
        submit = [TopicPartition(self.topics.submit, p) for p in partitions]
        self.consumer.consumer.committed(submit, timeout=30)
        reader = Consumer(
            consumer_config(
                self.bootstrap,
                f"{self.topics.prefix}router-restore-{uuid.uuid4().hex[:8]}",
            )
        )
        try:
            tps = [TopicPartition(self.topics.multipart, p, OFFSET_BEGINNING) for p in partitions]
            ends: dict[int, int] = {}
            deadline = time.monotonic() + RESTORE_TIMEOUT_S
            for tp in tps:
                low, high = watermarks(reader, tp, deadline)
                if high > low:
                    ends[tp.partition] = high
            if not ends:
                return []
            reader.assign([tp for tp in tps if tp.partition in ends])
            records: list[tuple[int, bytes, ChangelogValue]] = []
            while ends:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"multipart changelog not read to its end: {ends}")
                for msg in reader.consume(1000, 0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(err)
                        continue
                    part, key = msg.partition() or 0, msg.key() or b""
                    try:
                        records.append((part, key, decode_changelog(part, key, msg.value())))
                    except UNDECODABLE as exc:
                        self.dead_letters.put(msg, exc)
                for tp in reader.position([TopicPartition(self.topics.multipart, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        del ends[tp.partition]
            return records
        finally:
            reader.close()


def watermarks(reader: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """``tp``'s low and high watermarks, asked again while its leader moves (until
    ``deadline``, monotonic): a query for a partition whose leader is being moved
    fails with a retriable error that the next metadata refresh resolves."""
    while True:
        try:
            low, high = reader.get_watermark_offsets(tp, timeout=10, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in LEADER_MOVING or time.monotonic() > deadline:
                raise
        time.sleep(WATERMARK_RETRY_S)
