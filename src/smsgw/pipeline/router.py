"""Router: submit topic -> out.<provider>, in Kafka transactions.

Consume a batch, route each message, produce the results and the consumed
offsets in one transaction: after a crash a batch is either wholly routed or
not at all, so nothing is lost and nothing is routed twice (invariant 3).
A message with no route becomes a failure receipt for its customer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from confluent_kafka import KafkaException, Message, Producer, TopicPartition

from smsgw import log
from smsgw.db.providers import Provider
from smsgw.kafka.admin import ensure_topic_names
from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from smsgw.message import AcceptedMessage, RecordError, decode
from smsgw.receipts import (
    ERR_NO_ROUTE,
    customer_wants,
    receipt_tlvs,
    render_receipt_text,
)
from smsgw.records import Delivery, Routed
from smsgw.routing import RoutingTable
from smsgw.state import MessageState, StateRecord
from smsgw.topics import Topics


class RouterConfig(Protocol):
    providers: dict[str, Provider]
    routing: RoutingTable


def failure_receipt(
    m: AcceptedMessage,
    state: MessageState,
    err: int,
    *,
    network_error: bytes | None = None,
    ttl_s: float = 72 * 3600,
) -> Delivery:
    """The receipt a customer gets for a message the gateway itself could not send."""
    now = time.time()
    text = m.short_message.decode("latin-1", "replace") if m.data_coding in (0, 1, 3) else ""
    return Delivery(
        id=f"r:{m.id}:{m.destination.addr}:{int(state)}",
        kind="receipt",
        customer=m.customer,
        source=m.destination,  # a receipt comes "from" the handset
        destination=m.source,
        esm_class=0x04,
        data_coding=0,
        short_message=render_receipt_text(
            m.id, state, err, submit_ts=m.received_at, done_ts=now, text=text
        ),
        tlvs=tuple(receipt_tlvs(m.id, state, network_error)),
        created_at=now,
        expires_at=now + ttl_s,
        message_id=m.id,
        state=int(state),
    )


class Router:
    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        config: RouterConfig,
        *,
        transactional_id: str,
        outbound_partitions: int = 6,
        metrics: Any = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.config = config
        self.outbound_partitions = outbound_partitions
        self.consumer = AsyncConsumer(
            consumer_config(bootstrap, f"{topics.prefix}router"), [topics.submit]
        )
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "transactional.id": transactional_id,
                "linger.ms": 2,
                "compression.type": "lz4",
                "transaction.timeout.ms": 30000,
            }
        )
        self.producer.init_transactions(30)
        self._known_topics: set[str] = set()
        self.counts: dict[str, int] = {"routed": 0, "no_route": 0, "bad_record": 0}
        self.log = log.get("smsgw.router")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                batch = await self.consumer.batch(1000)
                if batch:
                    await self._route_batch(batch)
        finally:
            await asyncio.to_thread(self.consumer.consumer.close)

    def _route(self, m: AcceptedMessage) -> tuple[str, bytes, bytes] | None:
        route = self.config.routing.route(m.customer, m.source.addr, m.destination.addr)
        if route is None:
            return None
        chain = [route.provider, *route.failover]
        usable = [
            p for p in chain if p in self.config.providers and self.config.providers[p].enabled
        ]
        if not usable:
            return None
        routed = Routed(m, usable[0], tuple(usable[1:]), time.time())
        return self.topics.outbound(usable[0]), m.kafka_key, routed.encode()

    async def _route_batch(self, batch: list[Message]) -> None:
        out: list[tuple[str, bytes, bytes]] = []
        for msg in batch:
            try:
                m = decode(msg.value() or b"")
            except RecordError as exc:
                self.counts["bad_record"] += 1
                self.log.error(
                    "unreadable submit record skipped",
                    error=str(exc),
                    offset=msg.offset(),
                    partition=msg.partition(),
                )
                continue
            routed = self._route(m)
            if routed is not None:
                out.append(routed)
                self.counts["routed"] += 1
                continue
            self.counts["no_route"] += 1
            self.log.info("no route", id=m.id, customer=m.customer, dest=m.destination.addr)
            state = StateRecord(
                m.id,
                m.customer,
                m.source.addr,
                MessageState.UNDELIVERABLE,
                time.time(),
                ERR_NO_ROUTE,
                "no-route",
            )
            out.append((self.topics.message_state, m.id.encode(), state.encode()))
            if customer_wants(m.registered_delivery, MessageState.UNDELIVERABLE):
                receipt = failure_receipt(m, MessageState.UNDELIVERABLE, ERR_NO_ROUTE)
                out.append((self.topics.deliver, m.customer.encode(), receipt.encode()))
        needed = {t for t, _, _ in out} - self._known_topics
        if needed:
            await asyncio.to_thread(
                ensure_topic_names, self.bootstrap, needed, self.outbound_partitions
            )
            self._known_topics |= needed
        offsets: dict[tuple[str, int], int] = {}
        for msg in batch:
            key = (msg.topic() or "", msg.partition() or 0)
            offsets[key] = max(offsets.get(key, 0), (msg.offset() or 0) + 1)
        await asyncio.to_thread(self._transact, out, offsets)
        for msg in batch:
            self.consumer.done(msg)

    def _transact(
        self, out: list[tuple[str, bytes, bytes]], offsets: dict[tuple[str, int], int]
    ) -> None:
        """One batch, one transaction; on failure abort and re-raise (the actor restarts)."""
        p = self.producer
        p.begin_transaction()
        try:
            for topic, key, value in out:
                while True:
                    try:
                        p.produce(topic, value=value, key=key)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.send_offsets_to_transaction(
                [TopicPartition(t, part, o) for (t, part), o in offsets.items()],
                self.consumer.consumer.consumer_group_metadata(),
                30,
            )
            p.commit_transaction(30)
        except KafkaException:
            p.abort_transaction(30)
            raise
