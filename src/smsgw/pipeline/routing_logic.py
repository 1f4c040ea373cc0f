"""The router's decisions, without I/O: submit records in, records to write out.

``Router`` (smsgw.pipeline.router) owns the Kafka consumer, the transactional
producer and the changelog reads; this class decides, for each batch of
``submit`` records and the time, which records the transaction writes: the
message routed to ``out.<provider>``, or its final state on ``message-state``
and its failure receipt on ``deliver``, the multipart changelog writes, and
withdrawal markers passed on. Nothing here awaits, reads a clock or touches
Kafka, so tests/unit/test_pipeline_stateful.py drives it with the provider
bind's Outbox and the deliverer's logic through crashes and any interleaving.

The rules (invariant 9):
- the route's provider, or the first enabled provider of its failover chain;
  none: failed, err:906 "no-route" (smsgw.receipts.ERR_NO_ROUTE);
- past its expiry (validity period, SMPP 3.4 §7.1.1, or the provider's maximum
  age: smsgw.validity) when routed: EXPIRED, err:903, never sent;
- a submit_sm bigger than the provider's maximum PDU: failed, err:907;
- multipart: parts are held (smsgw.assembly) until the set is complete, then
  routed once as one record; an incomplete set expires as failed
  (err:904); late copies of a routed message are REJECTED duplicates;
- a withdrawal marker in the same batch as its message: REJECTED "withdrawn",
  no receipt (the customer was answered with an error and has no id); a
  marker after its message was routed goes on to that provider's topic.
"""

from __future__ import annotations

import collections
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from structlog.typing import FilteringBoundLogger

from smsgw import log
from smsgw.assembly import Assembled, Assembler, ChangelogValue, changelog_key
from smsgw.db.providers import Provider
from smsgw.kafka.dlq import UNDECODABLE
from smsgw.message import AcceptedMessage, Withdrawal, decode, encode, is_withdrawal
from smsgw.pipeline.connector import submit_fields
from smsgw.receipts import (
    ERR_DUPLICATE_PART,
    ERR_EXPIRED,
    ERR_INCOMPLETE,
    ERR_NO_ROUTE,
    ERR_UNSENDABLE,
    customer_wants,
    failure_receipt,
)
from smsgw.records import Routed
from smsgw.reframe import outgoing
from smsgw.routing import RoutingTable
from smsgw.smpp.codec import encode as encode_pdu
from smsgw.smpp.pdu import Pdu
from smsgw.state import MessageState, StateRecord, count_final
from smsgw.topics import Topics
from smsgw.validity import expires_at


class RouterConfig(Protocol):
    providers: dict[str, Provider]
    routing: RoutingTable


# One record to produce: topic, key, value (None: tombstone), partition (None: by key).
Out = tuple[str, bytes, bytes | None, int | None]
# Octets of a submit_sm besides the user data and TLVs: header 16, mandatory
# fields at most 3*1 + 6 + 2*(2+21) + 3*1 + 2*17 + 5*1 + 1 = 98. Below this
# bound plus the body, no PDU needs encoding to know it fits.
_SUBMIT_OVERHEAD = 16 + 98
LATE_KEPT = 100_000  # late-routed messages remembered for their withdrawal markers


def submit_octets(segments: tuple[AcceptedMessage, ...], mode: str) -> int:
    """The largest submit_sm the provider would get for these segments (its framing)."""
    biggest = 0
    for part in outgoing(segments, {}, mode=mode, ref=0):
        fields, tlvs = submit_fields(part.message)
        biggest = max(biggest, len(encode_pdu(Pdu("submit_sm", 1, 0, fields, tuple(tlvs)))))
    return biggest


def _octets_bound(m: AcceptedMessage) -> int:
    body = len(m.short_message) + len(m.message_payload or b"")
    tlvs = sum(4 + len(v) for v in m.tlvs.values())
    return _SUBMIT_OVERHEAD + body + tlvs + 4 + 16  # message_payload and SAR TLV headers


@dataclass
class Decision:
    """What one batch of submit records comes to: records to write, records to set aside."""

    out: list[Out] = field(default_factory=list)
    bad: list[tuple[int, Exception]] = field(default_factory=list)  # batch index, why (DLQ)


class RoutingLogic:
    """Per-record routing decisions and the multipart state of the partitions held."""

    def __init__(
        self,
        topics: Topics,
        config: RouterConfig,
        *,
        multipart_expiry_s: float = 600.0,
        message_ttl_s: float = 86400.0,
        late_after_s: float = 4.0,
        logger: FilteringBoundLogger | None = None,
    ) -> None:
        self.topics = topics
        self.config = config
        self.message_ttl_s = message_ttl_s
        # Read this long after acceptance, a message may have been answered with an
        # error (its report came too late): remember where it went.
        self.late_after_s = late_after_s
        self._late: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.assembler = Assembler(multipart_expiry_s)
        self.ready: list[Assembled] = []  # complete after a restore, routed next batch
        self.final: dict[str, int] = {}  # "STATE|reason" (count_final)
        self.no_route_by_customer: collections.Counter[str] = collections.Counter()
        self.counts: dict[str, int] = {
            "routed": 0,
            "no_route": 0,
            "bad_record": 0,
            "multipart_routed": 0,
            "multipart_expired": 0,
            "multipart_duplicates": 0,
            "multipart_held": 0,
            "expired": 0,
            "too_big": 0,
            "withdrawn": 0,
            "withdrawals_forwarded": 0,
            "withdrawals_unmatched": 0,
        }
        self.log = logger or log.get("smsgw.router")

    # ------------------------------------------------------------ partitions
    def revoked(self, partitions: Iterable[int]) -> None:
        """Partitions gone to another router: their held parts are its to restore."""
        gone = set(partitions)
        self.assembler.forget(gone)
        self.ready = [w for w in self.ready if w.partition not in gone]

    def restore(self, records: Iterable[tuple[int, bytes, ChangelogValue]]) -> None:
        """Held parts of newly assigned partitions, from their multipart changelog."""
        self.ready += self.assembler.restore(records)

    # ------------------------------------------------------------ decisions
    def route_batch(self, batch: Sequence[tuple[int, bytes]], now: float) -> Decision:
        """Records for a batch of (partition, value) read from ``submit``, in order."""
        decision = Decision()
        out = decision.out
        for whole in self.ready:
            out += self._assembled(whole, now)
        self.ready = []
        markers: dict[int, Withdrawal] = {}
        for i, (_partition, raw) in enumerate(batch):
            if not is_withdrawal(raw):
                continue
            try:
                markers[i] = Withdrawal.decode(raw)
            except UNDECODABLE as exc:
                self.counts["bad_record"] += 1
                decision.bad.append((i, exc))
        withdrawn_here = {w.id for w in markers.values()}
        dropped: set[str] = set()  # withdrawn here: their markers need no forwarding
        for i, (partition, raw) in enumerate(batch):
            if is_withdrawal(raw):
                w = markers.get(i)
                if w is not None and w.id not in dropped:  # its message came earlier, if at all
                    out += self._withdrawal(w)
                continue
            try:
                m = decode(raw)
            except UNDECODABLE as exc:  # RecordError is a ValueError
                self.counts["bad_record"] += 1
                decision.bad.append((i, exc))
                continue
            if m.concat is not None and m.concat.total > 1:
                complete = self.assembler.add(m, partition)
                if complete is not None:
                    out += self._assembled(complete, now)
                continue
            if m.id in withdrawn_here:  # its marker follows in this very batch
                dropped.add(m.id)
                out += self._withdrawn(m, now)
                continue
            routed = self._routed((m,), (), now)
            if now - m.received_at > self.late_after_s and routed:
                topic = routed[0][0]
                if topic != self.topics.message_state:  # routed, not failed
                    self._late[m.id] = (topic, m.kafka_key)
                    while len(self._late) > LATE_KEPT:
                        self._late.popitem(last=False)
            out += routed
        out += self.changelog_writes()
        self.counts["multipart_held"] = self.assembler.parts_held
        return decision

    def expire(self, now: float) -> list[Out]:
        """Incomplete multipart messages whose time ran out, and the changelog writes."""
        out: list[Out] = []
        for whole in self.assembler.expire(now):
            out += self._assembled(whole, now)
        out += self.changelog_writes()
        self.counts["multipart_held"] = self.assembler.parts_held
        return out

    def route(self, m: AcceptedMessage) -> tuple[str, tuple[str, ...]] | None:
        """The provider for a message and its failover chain, enabled providers only."""
        route = self.config.routing.route(m.customer, m.source.addr, m.destination.addr)
        if route is None:
            return None
        chain = [route.provider, *route.failover]
        usable = [
            p for p in chain if p in self.config.providers and self.config.providers[p].enabled
        ]
        if not usable:
            return None
        return usable[0], tuple(usable[1:])

    def _routed(
        self,
        parts: tuple[AcceptedMessage, ...],
        duplicates: tuple[AcceptedMessage, ...],
        now: float,
    ) -> list[Out]:
        """Records for one message (a single SMS, or all segments of a multipart one)."""
        first = parts[0]
        chosen = self.route(first)
        if chosen is not None:
            provider, failover = chosen
            unsendable = self._unsendable(provider, parts, duplicates, now)
            if unsendable is not None:
                return unsendable
            multi = first.concat is not None and first.concat.total > 1
            routed = Routed(first, provider, failover, now, parts if multi else (), duplicates)
            self.counts["routed"] += len(parts) + len(duplicates)
            return [(self.topics.outbound(provider), first.kafka_key, routed.encode(), None)]
        self.counts["no_route"] += len(parts) + len(duplicates)
        self.no_route_by_customer[first.customer] += len(parts) + len(duplicates)
        self.log.info(
            "no route",
            id=first.id,
            customer=first.customer,
            dest=log.mask_number(first.destination.addr),
        )
        return self._failed([*parts, *duplicates], ERR_NO_ROUTE, "no-route", now)

    def _unsendable(
        self,
        name: str,
        parts: tuple[AcceptedMessage, ...],
        duplicates: tuple[AcceptedMessage, ...],
        now: float,
    ) -> list[Out] | None:
        """Failures for a message the provider must not get (expired, too big); else None."""
        provider = self.config.providers[name]
        everyone = [*parts, *duplicates]
        first = parts[0]
        oldest = min(m.received_at for m in parts)
        deadline = expires_at(first.validity_period, oldest, provider.max_age_s(self.message_ttl_s))
        if now >= deadline:
            self.counts["expired"] += len(everyone)
            self.log.info("expired before routing", id=first.id, provider=name)
            return self._failed(everyone, ERR_EXPIRED, "expired", now, MessageState.EXPIRED)
        limit = provider.max_pdu_octets
        if any(_octets_bound(m) > limit for m in parts):
            try:
                size = submit_octets(parts, provider.segmentation)
            except ValueError:  # EncodeError, or a framing this code does not know
                size = limit + 1
            if size > limit:
                self.counts["too_big"] += len(everyone)
                self.log.info(
                    "message bigger than the provider takes", id=first.id, octets=size, limit=limit
                )
                return self._failed(everyone, ERR_UNSENDABLE, "too-big", now)
        return None

    def _failed(
        self,
        parts: list[AcceptedMessage],
        err: int,
        reason: str,
        now: float,
        final: MessageState = MessageState.UNDELIVERABLE,
    ) -> list[Out]:
        """State records and failure receipts for messages the gateway gives up on."""
        out: list[Out] = []
        for m in parts:
            state = StateRecord(
                m.id, m.customer, m.source.addr, final, now, err, reason, m.destination.addr
            )
            out.append((self.topics.message_state, m.id.encode(), state.encode(), None))
            count_final(self.final, final, reason)
            if customer_wants(m.registered_delivery, final):
                receipt = failure_receipt(m, final, err, now=now)
                out.append((self.topics.deliver, m.customer.encode(), receipt.encode(), None))
        return out

    def _assembled(self, whole: Assembled, now: float) -> list[Out]:
        out: list[Out] = [
            (self.topics.multipart, key, None, whole.partition) for key in whole.tombstones
        ]
        self.counts["multipart_duplicates"] += len(whole.duplicates)
        if whole.duplicate_of is not None:
            self.counts["multipart_duplicates"] += len(whole.parts)
            self.log.info("late copies of parts already sent", key=whole.key, ids=whole.ids)
            return out + self._failed(
                list(whole.all_parts), ERR_DUPLICATE_PART, "duplicate", now, MessageState.REJECTED
            )
        if whole.complete:
            self.counts["multipart_routed"] += 1
            return out + self._routed(whole.parts, whole.duplicates, now)
        self.counts["multipart_expired"] += 1
        self.log.warning(
            "multipart message incomplete, expired",
            key=whole.key,
            have=sorted(m.concat.seq for m in whole.parts if m.concat),
            ids=whole.ids,
        )
        return out + self._failed(
            list(whole.all_parts), ERR_INCOMPLETE, "multipart-incomplete", now
        )

    def _withdrawn(self, m: AcceptedMessage, now: float) -> list[Out]:
        """Not routed: final REJECTED without a receipt (the customer got an error)."""
        self.counts["withdrawn"] += 1
        self.log.warning("withdrawn message not routed", id=m.id, customer=m.customer)
        state = StateRecord(
            m.id,
            m.customer,
            m.source.addr,
            MessageState.REJECTED,
            now,
            0,
            "withdrawn",
            m.destination.addr,
        )
        count_final(self.final, MessageState.REJECTED, "withdrawn")
        return [(self.topics.message_state, m.id.encode(), state.encode(), None)]

    def _withdrawal(self, w: Withdrawal) -> list[Out]:
        """A marker after its message: pass it on to where the message went, if it did."""
        where = self._late.pop(w.id, None)
        if where is None:
            # Never on Kafka (the usual case), or routed before this router's time.
            self.counts["withdrawals_unmatched"] += 1
            return []
        self.counts["withdrawals_forwarded"] += 1
        return [(where[0], where[1], w.encode(), None)]

    def changelog_writes(self) -> list[Out]:
        """Parts now held and routed markers, for the multipart changelog."""
        out: list[Out] = [
            (self.topics.multipart, changelog_key(part), encode(part), partition)
            for partition, part in self.assembler.unpersisted()
        ]
        return out + [
            (self.topics.multipart, key, value, partition)
            for partition, key, value in self.assembler.markers()
        ]
