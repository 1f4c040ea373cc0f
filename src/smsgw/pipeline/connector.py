"""One bind to a provider: consume out.<provider>, submit within the TPS share, pair ids.

Throughput: each bind owns ``tps / binds`` of the provider's contract, paced
by ``aiolimiter`` with a bucket of one (so no burst: consecutive submits are
at least 1/share apart, and no one-second window holds more than the share);
the sum over all binds on all nodes is the contract.

A record's offset is committed only once its outcome is durable: the pairing
(provider id -> gateway id) on ``sent``, or a failure receipt on ``deliver``.
Retriable refusals (0x58, 0x14, 0x08, 0x64) back off and resend the same
message first, keeping order; submits in flight when a connection drops have
an unknown outcome, are resent, and are counted as possible duplicates.

Every message fails alone (invariant 9): a submit of unknown outcome is
resent *alone* (nothing else in flight), so a message that makes the provider
drop the connection is blamed, not its neighbours; after the provider's
``max_unknown_attempts`` it fails (err:906). A submit that does not encode
fails at once (err:907). A message past its expiry (validity period or
maximum age, smsgw.validity) is never sent: a timer on the earliest deadline
expires queued messages (err:903) even while the provider is unreachable,
and the send loop checks again right before sending; what is sent carries
the validity that remains, not the original.

A multipart message is one record: its parts go out in order on this bind,
under this bind's own reference, re-segmented if the provider wants another
framing (smsgw.reframe); the record's offset is done when every part's
outcome is durable.

The decisions above live in smsgw.pipeline.outbox (sans-IO, driven by a
stateful property test); this class does the I/O around them.

A message routed "late" (more than the produce timeout after acceptance: its
customer may have been answered with an error, smsgw.server.withdraw) waits
until its withdrawal marker could have come (outbox.withdrawal_hold_s); the
marker, forwarded by the router right behind it on this topic, drops it (REJECTED, reason
"withdrawn", no receipt). A marker for a message already sent is counted
(``withdrawn_too_late``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiolimiter import AsyncLimiter

from smsgw import log
from smsgw.db.customers import Customer
from smsgw.db.providers import Provider
from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from smsgw.kafka.dlq import UNDECODABLE, DeadLetters
from smsgw.kafka.producer import AsyncProducer
from smsgw.message import AcceptedMessage, Withdrawal, is_withdrawal, late_after_s
from smsgw.pipeline.outbox import (
    WITHDRAWAL_HOLD_S,
    BindStats,
    Failed,
    Group,
    Item,
    Outbox,
    Paired,
    Retry,
    withdrawal_hold_s,
)
from smsgw.pipeline.smpp_client import BindRefused, SmppClient
from smsgw.provider_ids import receipt_key, receipt_keys
from smsgw.receipts import (
    customer_wants,
    failure_receipt,
    is_receipt,
    message_preview,
    network_error_for_status,
    parse_receipt,
)
from smsgw.records import Delivery, InboundReceipt, Pairing, Routed
from smsgw.routing import MoRoutingTable
from smsgw.smpp import events as ev
from smsgw.smpp.events import BindMode
from smsgw.smpp.pdu import FieldValue, Pdu, Tlv
from smsgw.smpp.session import WindowFull
from smsgw.smpp.status import CommandStatus as S
from smsgw.state import MessageState, StateRecord, count_final
from smsgw.tls import client_context
from smsgw.topics import Topics

TAG_MESSAGE_PAYLOAD = 0x0424
TAG_SAR_REF, TAG_SAR_TOTAL, TAG_SAR_SEQ = 0x020C, 0x020E, 0x020F
__all__ = ["BindStats", "ConnectorConfig", "ProviderBind", "submit_fields"]
# A bind with nothing to do waits on events, never on a timer (issue 13): the
# consumer's wait for records returns this often at most (to notice a stop).
FETCH_WAIT_S = 5.0
COMMIT_INTERVAL_S = 0.2  # finished records are committed in batches this far apart
# What an idle bind's librdkafka consumer wakes up for (issue 13: 200 binds woke
# their host's threads ~15 times a second each): empty fetches and heartbeats.
# The broker answers a fetch as soon as a record is readable (fetch.min.bytes 1;
# a transaction's commit marker moves the last stable offset and completes it),
# so the long-poll costs no latency; it only spaces the empty answers.
IDLE_FETCH_WAIT_MS = 5000
# librdkafka's default; a member learns of a rebalance at its next heartbeat, so a
# bind of a provider joining or leaving moves partitions up to this much later.
# Still a third of the session timeout (consumer_config).
BIND_HEARTBEAT_MS = 3000
# A bind giving partitions up waits at most this long (or the produce timeout, if
# shorter) for its sends on them to be answered and their outcomes durable.
DRAIN_S = 5.0


def held_flush_s(produce_timeout_s: float) -> float:
    """How long a bind giving partitions up (or stopping) may keep sending their
    records while a late message of theirs is held: its hold ends at most
    2 produce timeouts + WITHDRAWAL_HOLD_S from now (``withdrawal_hold_s``), then
    it is sent and its outcome recorded."""
    return 2 * produce_timeout_s + WITHDRAWAL_HOLD_S + min(DRAIN_S, produce_timeout_s)


class ConnectorConfig(Protocol):
    customers: dict[str, Customer]
    mo_routing: MoRoutingTable


def submit_fields(
    m: AcceptedMessage,
    request_receipts: str = "always",
    *,
    validity_period: str | None = None,
) -> tuple[dict[str, FieldValue], list[Tlv]]:
    """The provider-side submit_sm for an accepted message: the customer's octets, unchanged.

    ``validity_period`` replaces the customer's (the bind passes what remains of it).
    registered_delivery (SMPP 3.4 §5.2.17) is the provider's `request_receipts`:
    "always" asks for a receipt on every message, because the receipt drives the
    message's state (query_sm, failure receipts, the customer's receipt, which is
    filtered by the customer's own flags); "as-customer" passes the customer's
    flags on, so a message whose customer asked for none costs no receipt but
    stays ENROUTE in the gateway's state.
    """
    fields: dict[str, FieldValue] = {
        "service_type": m.service_type,
        "source_addr_ton": m.source.ton,
        "source_addr_npi": m.source.npi,
        "source_addr": m.source.addr,
        "dest_addr_ton": m.destination.ton,
        "dest_addr_npi": m.destination.npi,
        "destination_addr": m.destination.addr,
        "esm_class": m.esm_class & 0xC0,  # UDHI / reply path; store-and-forward mode
        "protocol_id": m.protocol_id,
        "priority_flag": m.priority,
        "schedule_delivery_time": m.schedule_delivery_time,
        "validity_period": m.validity_period if validity_period is None else validity_period,
        "registered_delivery": 1 if request_receipts == "always" else m.registered_delivery,
        "replace_if_present_flag": m.replace_if_present,
        "data_coding": m.data_coding,
        "sm_default_msg_id": m.sm_default_msg_id,
        "short_message": m.short_message if m.message_payload is None else b"",
    }
    tlvs: list[Tlv] = sorted(m.tlvs.items())
    if m.message_payload is not None:
        tlvs.append((TAG_MESSAGE_PAYLOAD, m.message_payload))
    c = m.concat
    if c is not None and c.source == "sar":
        tlvs += [
            (TAG_SAR_REF, c.ref.to_bytes(2, "big")),
            (TAG_SAR_TOTAL, bytes([c.total])),
            (TAG_SAR_SEQ, bytes([c.seq])),
        ]
    return fields, tlvs


class ProviderBind:
    def __init__(
        self,
        provider: Provider,
        index: int,
        *,
        bootstrap: str,
        topics: Topics,
        producer: AsyncProducer,
        config: ConnectorConfig,
        receipt_ttl_s: float = 72 * 3600,
        failover_after_s: float = 10.0,
        message_ttl_s: float = 86400.0,
        produce_timeout_s: float = 5.0,
    ) -> None:
        self.provider = provider
        self.index = index
        self.name = f"provider:{provider.name}#{index}"
        self.topics = topics
        self.producer = producer
        self.config = config
        self.receipt_ttl_s = receipt_ttl_s
        self.failover_after_s = failover_after_s
        self.max_age_s = provider.max_age_s(message_ttl_s)
        self.produce_timeout_s = produce_timeout_s
        self.late_after_s = late_after_s(produce_timeout_s)  # as the router's
        # The expiry timer sleeps until the outbox's first deadline, or this.
        self._deadline_changed = asyncio.Event()
        self.unbound_since = time.monotonic()
        # Each bind's part of the provider's contracted TPS (DESIGN invariant 4).
        share = self.tps_share = provider.tps / max(1, provider.binds)
        # Bucket of one: submits at least 1/share apart (2% margin for network jitter
        # between our clock and the provider's per-second counters).
        self.limiter = AsyncLimiter(1, time_period=1.02 / share)
        self.consumer = AsyncConsumer(
            consumer_config(
                bootstrap,
                f"{topics.prefix}provider.{provider.name}",
                **{
                    "client.id": self.name,
                    "fetch.wait.max.ms": IDLE_FETCH_WAIT_MS,
                    "heartbeat.interval.ms": BIND_HEARTBEAT_MS,
                },
            ),
            [topics.outbound(provider.name)],
            on_revoke=self._revoked,
            on_assign=self._assigned,
            drain=self._drain,
            static_id=self.name,  # one bind on one node at a time: its id is its own
        )
        self.dead_letters = DeadLetters(bootstrap, topics, f"provider.{provider.name}")
        # Set when the send loop may have work: records queued, an answer or a
        # timeout freed a window slot or a resend's turn. Cleared by the send loop
        # before it waits (no timer: an idle bind sleeps).
        self._wake = asyncio.Event()
        self._room = asyncio.Event()  # the send loop took from a full queue
        self._unbound = asyncio.Event()  # the session ended: the failover clock runs
        # Set when a send may have settled (an answer, a timeout, an outcome durable):
        # a drain of revoked partitions waits on it.
        self._settled = asyncio.Event()
        self.client: SmppClient | None = None  # the transceiver, or the pair's transmitter
        self.rx_client: SmppClient | None = None  # the pair's receiver (bind mode tx+rx)
        self.pause_until = 0.0
        self.stats = BindStats()
        # Every decision on the queued messages (smsgw.pipeline.outbox). Concatenation
        # references start at random: a restarted bind does not reuse those of the
        # messages just sent.
        self.outbox = Outbox(
            window=provider.window,
            max_unknown_attempts=provider.max_unknown_attempts,
            max_age_s=self.max_age_s,
            late_after_s=self.late_after_s,
            segmentation=provider.segmentation,
            offsets=self.consumer.tracker,
            stats=self.stats,
            ref=random.randrange(1 << 16),
        )
        self.log = log.get("smsgw.connector").bind(bind=self.name)

    # ------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        fetcher = asyncio.create_task(self._fetch(stop), name=f"{self.name}:fetch")
        committer = asyncio.create_task(self._commit_loop(stop), name=f"{self.name}:commit")
        failover = asyncio.create_task(self._failover_loop(stop), name=f"{self.name}:failover")
        expiry = asyncio.create_task(self._expiry_timer(stop), name=f"{self.name}:expiry")
        try:
            delay = 0.5
            while not stop.is_set():
                try:
                    await self._session(stop)
                    delay = 0.5
                except (OSError, TimeoutError, BindRefused, ConnectionError) as exc:
                    self.log.warning("provider connection failed", error=str(exc))
                    self.stats.last_error = str(exc) or type(exc).__name__
                if self.stats.bound:
                    self.unbound_since = time.monotonic()
                self.stats.bound = False
                self._unbound.set()
                self._requeue_in_flight()
                if stop.is_set():
                    break
                # Reconnect with exponential backoff and full jitter.
                await _sleep_or_stop(stop, random.uniform(0, delay))
                delay = min(delay * 2, 30.0)
        finally:
            for task in (fetcher, committer, failover, expiry):
                task.cancel()
            await asyncio.gather(fetcher, committer, failover, expiry, return_exceptions=True)
            await _unbind([c for c in (self.client, self.rx_client) if c is not None])
            await _in_own_thread(self.consumer.close, f"{self.name}:close")

    async def _session(self, stop: asyncio.Event) -> None:
        """One bind unit: a transceiver, or a transmitter/receiver pair (SMPP 3.4 §2.2).

        The pair is one unit for placement, TPS and failover: submits go out on
        the transmitter, receipts and MO come in on the receiver (deliver_sm is
        handled on either), and when one link drops both are closed and
        reopened together. Every way out of here but a crash unbinds what is
        still bound and waits (bounded) for unbind_resp (§4.2).
        """
        p = self.provider
        pair = p.bind_mode == "tx+rx"
        links: list[SmppClient] = []
        self.client = self.rx_client = None
        try:
            client = await self._open(BindMode.TX if pair else BindMode.TRX, self._on_event, links)
            if pair:
                await self._open(BindMode.RX, self._on_receiver_event, links)
            self.stats.bound = True
            self.log.info(
                "bound to provider",
                host=p.host,
                port=p.port,
                mode=p.bind_mode,
                tps_share=self.tps_share,
            )
            sender = asyncio.create_task(self._send_loop(client), name=f"{self.name}:send")
            stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait(
                    {sender, stopper, *(link.closed for link in links)},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stop.is_set() and not sender.done() and self.outbox.holding():
                    # A planned stop with late messages held: what was read is sent
                    # first (``Outbox.owed``), or their partitions' next owners send
                    # again everything sent behind them. Nothing more is read.
                    await self._settle(
                        self.outbox.owed,
                        "stopping with late messages held",
                        held_flush_s(self.produce_timeout_s),
                    )
            finally:
                sender.cancel()
                stopper.cancel()
                await asyncio.gather(sender, stopper, return_exceptions=True)
            if sender.done() and not sender.cancelled() and sender.exception():
                raise ConnectionError(f"sender failed: {sender.exception()!r}")
            if stop.is_set() and not any(link.closed.done() for link in links):
                # A planned stop (the bind count changed, the node leaves): the sends
                # in flight are answered before the unbind, or their outcome stays
                # unknown and the partitions' next owner sends them again; and their
                # outcomes are durable before the consumer's close, whose revoke can
                # commit no more (librdkafka: "Broker handle destroyed for
                # termination"), so what became durable then was sent again too.
                await self._settle(
                    lambda: len(self.outbox.in_flight) + len(self.outbox.recording),
                    "unbinding with sends unsettled",
                )
        finally:
            await _unbind(links)

    async def _open(
        self, mode: BindMode, on_event: Callable[[Any], None], links: list[SmppClient]
    ) -> SmppClient:
        """Connect and bind one link of the unit (added to `links` as soon as it exists)."""
        p = self.provider
        link = await SmppClient.connect(
            p.host,
            p.port,
            on_event,
            window=p.window,
            enquire_link_interval=float(p.enquire_link_s),
            ssl=client_context(p.tls_ca_file, verify_hostname=p.tls_verify_hostname)
            if p.tls
            else None,
        )
        links.append(link)
        # Before the bind: a deliver_sm can arrive right behind the bind_resp.
        if mode is BindMode.RX:
            self.rx_client = link
        else:
            self.client = link
        self.stats.connects += 1
        await link.bind(mode, p.system_id, p.password, system_type=p.system_type)
        return link

    def _on_receiver_event(self, e: Any) -> None:
        """Events of the receiver link of a TX+RX pair: its deliver_sm are answered on it."""
        if isinstance(e, ev.DeliverReceived) and self.rx_client is not None:
            self._on_deliver(e, self.rx_client)
        else:
            self._on_event(e)

    # ------------------------------------------------------------ consuming
    async def _fetch(self, stop: asyncio.Event) -> None:
        limit = max(200, 4 * self.provider.window)
        while not stop.is_set():
            if len(self.outbox.queue) >= limit:
                # Until the send loop takes some (or now and then: the failover or
                # expiry may empty the queue while nothing is sent).
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 1.0)
                continue
            for msg in await self.consumer.batch(limit - len(self.outbox.queue), FETCH_WAIT_S):
                pos = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
                raw = msg.value() or b""
                if is_withdrawal(raw):
                    try:
                        self._withdraw(Withdrawal.decode(raw))
                    except UNDECODABLE as exc:
                        self.dead_letters.put(msg, exc)
                    self._skip(pos)
                    continue
                try:
                    routed = Routed.decode(raw)
                except UNDECODABLE as exc:
                    self.dead_letters.put(msg, exc)
                    self._skip(pos)
                    continue
                first = self.outbox.next_deadline()
                if self.outbox.add(pos, routed):
                    hold = withdrawal_hold_s(
                        routed.message.received_at,
                        time.time(),
                        self.produce_timeout_s,
                        routed.routed_at,
                    )
                    asyncio.get_running_loop().call_later(hold, self._release, routed.message.id)
                else:
                    self._wake.set()
                if self.outbox.next_deadline() < first:
                    self._deadline_changed.set()

    def _skip(self, pos: tuple[str, int, int]) -> None:
        self.outbox.skip(pos)
        self.consumer.progress.set()  # the outbox marks offsets done: wake the committer

    def _release(self, mid: str) -> None:
        """A late message's hold is over: queued, the send loop woken."""
        self.outbox.release(mid)
        self._wake.set()

    def _withdraw(self, w: Withdrawal) -> None:
        """The customer was answered with an error: drop the message if it is not sent."""
        too_late = self.stats.withdrawn_too_late
        failed = self.outbox.withdraw(w.id)
        if self.stats.withdrawn_too_late > too_late:
            self.log.error("withdrawn message was sent already", id=w.id)
        if failed:
            self.log.warning("withdrawn message not sent", id=w.id)
        self._record(failed)

    async def _expiry_timer(self, stop: asyncio.Event) -> None:
        """Expire queued messages at their deadline, bound or not (a timer, not a scan).

        Sleeps until the earliest deadline (or until an earlier one arrives);
        then the outbox fails every queued part of the groups due with EXPIRED.
        """
        while not stop.is_set():
            self._deadline_changed.clear()
            now = time.time()
            expired = self.outbox.expire(now)
            if expired:
                self._room.set()
            self._record(expired)
            first = self.outbox.next_deadline()
            wait = first - now if first != float("inf") else 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._deadline_changed.wait(), max(0.0, wait))

    async def _commit_loop(self, stop: asyncio.Event) -> None:
        """Commit what is finished, in batches; idle (nothing finished) it only waits."""
        while not stop.is_set():
            await self.consumer.progress.wait()
            await asyncio.sleep(COMMIT_INTERVAL_S)
            self.consumer.progress.clear()
            self.consumer.commit()

    async def _failover_loop(self, stop: asyncio.Event) -> None:
        """Provider unreachable for a while: hand messages with a failover route on."""
        while not stop.is_set():
            if self.stats.bound:  # bound: nothing to do until the session ends
                self._unbound.clear()
                await self._unbound.wait()
                continue
            await asyncio.sleep(0.5)  # unbound: hand on what the fetcher queues meanwhile
            if self.stats.bound or time.monotonic() - self.unbound_since < self.failover_after_s:
                continue
            groups = self.outbox.take_for_failover()
            if groups:
                self._room.set()
            for g in groups:
                r = g.routed
                nxt = dataclasses.replace(
                    r, provider=r.failover[0], failover=r.failover[1:], routed_at=time.time()
                )
                fut = self.producer.produce(
                    self.topics.outbound(nxt.provider), nxt.encode(), r.message.kafka_key
                )
                fut.add_done_callback(functools.partial(self._handed_on, g))
                self.log.info("failing over", id=r.message.id, to=nxt.provider)

    def _revoked(self, parts: list[Any]) -> None:
        self.outbox.revoke((p.topic, p.partition) for p in parts)

    def _assigned(self, parts: list[Any]) -> None:
        self.outbox.assign((p.topic, p.partition) for p in parts)

    async def _drain(self, parts: list[Any]) -> None:
        """Partitions go to another bind (a rebalance; this bind's stop): nothing more
        of theirs is sent, and what was sent settles before they go, bounded.

        Their queued records are dropped (the next owner reads them); the sends in
        flight on them are awaited until answered and their outcome (pairing,
        failure receipt) is durable, so that their offsets are committed and the
        next owner does not send them again. What is still unsettled after
        min(DRAIN_S, produce timeout) is left to it (a possible duplicate, as after
        a crash).
        """
        gone = {(p.topic, p.partition) for p in parts}
        if self.outbox.holding(gone) and self.stats.bound:
            # A late message of theirs is held: sent first, with what was read of
            # them (``Outbox.owed``: else a hole in the commit). The consumer is in
            # the revoke meanwhile: nothing more of them is read.
            await self._settle(
                lambda: self.outbox.owed(gone),
                "partitions let go with late messages held",
                held_flush_s(self.produce_timeout_s),
            )
        self.outbox.revoke(gone)
        self._room.set()  # the fetcher may have waited for a queue that shrank
        await self._settle(
            lambda: self.outbox.unsettled(gone), "partitions let go with sends unsettled"
        )

    async def _settle(
        self, unsettled: Callable[[], int], what: str, bound_s: float | None = None
    ) -> None:
        """Until ``unsettled()`` is 0, woken by each answer and durable outcome (no
        poll); at most ``bound_s`` (min(DRAIN_S, produce timeout)), then ``what`` is
        logged."""
        loop = asyncio.get_running_loop()
        if bound_s is None:
            bound_s = min(DRAIN_S, self.produce_timeout_s)
        deadline = loop.time() + bound_s
        while True:
            self._settled.clear()
            left = unsettled()
            if not left:
                return
            wait = deadline - loop.time()
            if wait <= 0:
                self.log.warning(what, sends=left)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), wait)

    def _requeue_in_flight(self) -> None:
        """Submits whose response never came: outcome unknown, send again (counted)."""
        if self.outbox.in_flight:
            self.log.warning(
                "resending submits of unknown outcome", count=len(self.outbox.in_flight)
            )
            self._record(self.outbox.disconnected())
            self._wake.set()
            self._settled.set()

    # ------------------------------------------------------------ sending
    async def _send_loop(self, client: SmppClient) -> None:
        outbox = self.outbox
        while True:
            if not outbox.ready():
                # Until something is queued, an answer frees a slot or a resend's
                # turn comes (set by the fetcher and the session's events).
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self.pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await self.limiter.acquire()
            if client.closed.done():
                return
            now = time.time()
            item = outbox.next(now)
            if item is None:
                continue
            self._room.set()
            if isinstance(item, Failed):  # expired in the queue
                self._record([item])
                continue
            try:
                fields, tlvs = submit_fields(
                    item.part,
                    self.provider.request_receipts,
                    validity_period=outbox.validity_for(item, now),
                )
                seq = client.submit(fields, tlvs)
            except WindowFull:
                outbox.unsent(item)
                await asyncio.sleep(0.01)
                continue
            except Exception as exc:  # the codec (smpplib) raises anything on a bad value
                self.log.error(
                    "message does not encode for the provider", ids=item.ids, error=repr(exc)
                )
                self._record([outbox.unsendable(item)])
                continue
            outbox.sent(seq, item, now)

    # ------------------------------------------------------------ events
    def _on_event(self, e: Any) -> None:
        self._wake.set()  # an answer or a timeout may let the send loop go on
        self._settled.set()
        if isinstance(e, ev.SubmitResponse):
            self._on_submit_resp(e)
        elif isinstance(e, ev.DeliverReceived):
            self._on_deliver(e)
        elif isinstance(e, ev.ResponseTimeout):
            failed = self.outbox.no_answer(e.sequence)
            if failed is not None:
                self._record([failed])
        elif isinstance(e, ev.ProtocolError):
            self.log.warning("protocol error from provider", status=e.status.name, detail=e.detail)

    def _on_submit_resp(self, e: ev.SubmitResponse) -> None:
        result = self.outbox.answer(e.sequence, e.status, e.message_id)
        if isinstance(result, Retry):
            self.pause_until = max(self.pause_until, time.monotonic() + result.backoff_s)
        elif isinstance(result, Paired):
            self._paired(result.item, result.provider_id)
        elif isinstance(result, Failed):
            self.log.info("provider refused message", id=result.item.part.id, status=e.status.name)
            self._record([result])

    def _record(self, outcomes: list[Failed]) -> None:
        """Write final states the outbox decided (logged here, where the I/O is)."""
        for f in outcomes:
            if f.reason == "unknown-outcome":
                self.log.warning(
                    "no answer from the provider after repeated sends, message failed",
                    ids=f.item.ids,
                    attempts=f.item.unknown,
                )
            elif f.reason == "expired":
                self.log.info("message expired before the provider took it", ids=f.item.ids)
            self._failed(f)

    def _paired(self, item: Item, provider_id: str) -> None:
        m = item.part
        p = self.provider
        key = _key(p.name, provider_id, p.submit_id_format)
        text = message_preview(m.message_payload or m.short_message, m.data_coding, m.esm_class)
        first, *also = item.ids or ("",)
        pairing = Pairing(
            key,
            p.name,
            provider_id,
            first,
            m.customer,
            m.source,
            m.destination,
            m.registered_delivery,
            item.sent_at,
            text,
            m.received_at,
            tuple(also),
            self.name,
            m.bind,
        )
        fut = self.producer.produce(self.topics.sent, pairing.encode(), key.encode())
        for mid in item.ids:
            state = StateRecord(
                mid, m.customer, m.source.addr, MessageState.ENROUTE, time.time(), 0, "sent"
            )
            self.producer.produce(self.topics.message_state, state.encode(), mid.encode())
        fut.add_done_callback(lambda f: self._durable(f, item))

    def _failed(self, f: Failed) -> None:
        """A final state that is not the provider's receipt: state record, receipt, offset.

        ``f.status`` is the provider's command_status for a refusal (0 otherwise).
        """
        item, status, state, err, reason = f.item, f.status, f.state, f.err, f.reason
        futures = []
        for mid in item.ids:
            m = dataclasses.replace(item.part, id=mid)
            record = StateRecord(
                mid,
                m.customer,
                m.source.addr,
                state,
                time.time(),
                status or err,
                reason,
                m.destination.addr,
            )
            self.producer.produce(self.topics.message_state, record.encode(), mid.encode())
            count_final(self.stats.final, state, reason)
            if f.receipt and customer_wants(m.registered_delivery, state):
                delivery = failure_receipt(
                    m,
                    state,
                    err,
                    network_error=network_error_for_status(status) if status else None,
                    ttl_s=self.receipt_ttl_s,
                )
                futures.append(
                    self.producer.produce(
                        self.topics.deliver, delivery.encode(), m.customer.encode()
                    )
                )
        if futures:
            gathered = asyncio.gather(*futures)
            gathered.add_done_callback(lambda f: self._durable(f, item))
        else:
            self._finish(item)

    def _handed_on(self, group: Group, fut: asyncio.Future[Any]) -> None:
        """The whole record went to the failover provider's topic."""
        if fut.exception() is None:
            self.outbox.handed_on(group)
            self.consumer.progress.set()
        else:
            self.log.error("could not hand on to failover", error=str(fut.exception()))

    def _durable(self, fut: asyncio.Future[Any], item: Item) -> None:
        if fut.exception() is None:
            self._finish(item)
        else:
            # Not recorded: leave the offset uncommitted; the record is sent again
            # after a restart or rebalance (a possible duplicate, counted there).
            self.log.error("could not record outcome", error=str(fut.exception()))
            self.outbox.not_recorded(item)
            self._settled.set()

    def _finish(self, item: Item) -> None:
        """One part's outcome is durable; the record is done with its last part."""
        self.outbox.durable(item)
        self.consumer.progress.set()  # a commit point may have moved
        self._settled.set()

    def _on_deliver(self, e: ev.DeliverReceived, link: SmppClient | None = None) -> None:
        client = link or self.client
        assert client is not None
        pdu = e.pdu
        tlvs = dict(pdu.tlvs)
        if is_receipt(pdu.get_int("esm_class")):
            fut = self._receipt(pdu, tlvs)
        else:
            fut = self._mo(pdu, tlvs)
        if fut is None:
            client.respond_deliver(e.sequence, S.ESME_RX_P_APPN, e.command)
            return

        def answer(f: asyncio.Future[Any]) -> None:
            status = S.ESME_ROK if f.exception() is None else S.ESME_RX_T_APPN
            if not client.closed.done():
                client.respond_deliver(e.sequence, status, e.command)

        fut.add_done_callback(answer)

    def _receipt(self, pdu: Pdu, tlvs: dict[int, bytes]) -> asyncio.Future[Any] | None:
        r = parse_receipt(pdu.get_bytes("short_message"), tlvs)
        if r is None:
            self.log.warning("receipt without a message id")
            return None
        self.stats.receipts += 1
        p = self.provider
        try:  # the TLV in the submit format, the text in the receipt format
            key, alt = receipt_keys(
                p.name, r.tlv_id, r.text_id, p.submit_id_format, p.receipt_id_format
            )
        except ValueError:
            key, alt = _key(p.name, r.message_id, p.receipt_id_format), None
        handset = pdu.get_str("source_addr")  # lets the correlator check the text's id
        inbound = InboundReceipt(
            key,
            p.name,
            r.message_id,
            r.state,
            r.err,
            r.network_error,
            time.time(),
            alt,
            False,
            handset,
        )
        return self.producer.produce(self.topics.inbound, inbound.encode(), key.encode())

    def _mo(self, pdu: Pdu, tlvs: dict[int, bytes]) -> asyncio.Future[Any] | None:
        dest = pdu.get_str("destination_addr")
        route = self.config.mo_routing.route(dest)
        if route is None or route.customer not in self.config.customers:
            self.log.warning("MO without a route", dest=log.mask_number(dest))
            return None
        self.stats.mo += 1
        from smsgw.smpp.submission import Address

        now = time.time()
        body = pdu.get_bytes("short_message") or tlvs.get(TAG_MESSAGE_PAYLOAD, b"")
        keep = tuple((t, v) for t, v in pdu.tlvs if t != TAG_MESSAGE_PAYLOAD)
        delivery = Delivery(
            id=f"mo:{self.provider.name}:{pdu.get_str('source_addr')}:{dest}:{now:.6f}",
            kind="mo",
            customer=route.customer,
            source=Address(
                pdu.get_str("source_addr"),
                pdu.get_int("source_addr_ton"),
                pdu.get_int("source_addr_npi"),
            ),
            destination=Address(dest, pdu.get_int("dest_addr_ton"), pdu.get_int("dest_addr_npi")),
            esm_class=pdu.get_int("esm_class"),
            data_coding=pdu.get_int("data_coding"),
            short_message=body,
            tlvs=keep,
            created_at=now,
            expires_at=now + self.receipt_ttl_s,
        )
        return self.producer.produce(
            self.topics.deliver, delivery.encode(), route.customer.encode()
        )


def _key(provider: str, raw_id: str, fmt: str) -> str:
    """The pairing key; an id that does not fit the configured format is kept as sent."""
    try:
        return receipt_key(provider, raw_id, fmt)
    except ValueError:
        log.get("smsgw.connector").warning(
            "provider id does not match its configured format",
            provider=provider,
            id=raw_id,
            format=fmt,
        )
        return f"{provider}:{raw_id.strip()}"


async def _unbind(links: list[SmppClient]) -> None:
    """Unbind every link still bound, together, each waiting at most UNBIND_GRACE_S."""
    await asyncio.gather(*(link.unbind() for link in links), return_exceptions=True)


async def _in_own_thread(fn: Callable[[], None], name: str) -> None:
    """``fn()`` on a thread of its own, not the loop's shared pool (``to_thread``).

    A consumer's close waits for the end of its wait under way (up to
    FETCH_WAIT_S): a hundred binds stopping at once held the default pool's few
    threads for minutes, and with them everything else of the process that
    uses it (a new provider's topic creation, the listener's password checks).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if done.done():  # the awaiting task was cancelled
            return
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

    def run() -> None:
        exc: BaseException | None = None
        try:
            fn()
        except BaseException as e:  # handed to the awaiting task
            exc = e
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    await done


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
