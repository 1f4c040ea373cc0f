"""The accepted message as it travels through Kafka.

One record per destination (a submit_multi to three numbers is three
messages with three ids). The record carries everything later steps need and
the customer's original octets, unchanged. Encoded as versioned JSON with
bytes in hex: readable with kafka-console-consumer; orjson because every hop
re-reads and re-writes records (the stdlib json was ~40% of a router's work).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from smsgw.smpp.submission import Address, Submission
from smsgw.smpp.udh import Concat

RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    id: str
    customer: str  # the customer's system_id
    bind: str  # which session accepted it: "<node>/<session>"
    command: str  # submit_sm, data_sm or submit_multi
    source: Address
    destination: Address
    service_type: str
    esm_class: int
    protocol_id: int
    priority: int
    schedule_delivery_time: str
    validity_period: str
    registered_delivery: int
    replace_if_present: int
    data_coding: int
    sm_default_msg_id: int
    short_message: bytes
    message_payload: bytes | None
    udh: bytes | None
    concat: Concat | None
    received_at: float  # epoch seconds at the listener
    tlvs: dict[int, bytes] = field(default_factory=dict)

    @property
    def wants_receipt(self) -> bool:
        return self.registered_delivery & 0x03 in (1, 2)

    @property
    def concat_key(self) -> str | None:
        """What every part of one concatenated message shares, whichever bind sent it."""
        if self.concat is None:
            return None
        c = self.concat
        parts = (self.customer, self.source.addr, self.destination.addr, c.ref_bits, c.ref, c.total)
        return "|".join(str(p) for p in parts)

    @property
    def kafka_key(self) -> bytes:
        """Parts of one message must meet on one partition; others spread by id."""
        return (self.concat_key or self.id).encode()


def from_submission(
    sub: Submission, *, ids: list[str], customer: str, bind: str, received_at: float
) -> list[AcceptedMessage]:
    """One AcceptedMessage per destination, each with its own id from ``ids``."""
    if len(ids) != len(sub.destinations):
        raise ValueError("one id per destination")
    return [
        AcceptedMessage(
            id=mid,
            customer=customer,
            bind=bind,
            command=sub.command,
            source=sub.source,
            destination=dest,
            service_type=sub.service_type,
            esm_class=sub.esm_class,
            protocol_id=sub.protocol_id,
            priority=sub.priority_flag,
            schedule_delivery_time=sub.schedule_delivery_time,
            validity_period=sub.validity_period,
            registered_delivery=sub.registered_delivery,
            replace_if_present=sub.replace_if_present,
            data_coding=sub.data_coding,
            sm_default_msg_id=sub.sm_default_msg_id,
            short_message=sub.short_message,
            message_payload=sub.message_payload,
            udh=sub.udh,
            concat=sub.concat,
            received_at=received_at,
            tlvs=dict(sub.tlvs),
        )
        for mid, dest in zip(ids, sub.destinations, strict=True)
    ]


def _addr(a: Address) -> list[Any]:
    return [a.addr, a.ton, a.npi]


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def encode(m: AcceptedMessage) -> bytes:
    return orjson.dumps(to_dict(m))


def to_dict(m: AcceptedMessage) -> dict[str, Any]:
    c = m.concat
    return {
        "v": RECORD_VERSION,
        "id": m.id,
        "customer": m.customer,
        "bind": m.bind,
        "command": m.command,
        "src": _addr(m.source),
        "dst": _addr(m.destination),
        "service_type": m.service_type,
        "esm_class": m.esm_class,
        "protocol_id": m.protocol_id,
        "priority": m.priority,
        "schedule": m.schedule_delivery_time,
        "validity": m.validity_period,
        "registered_delivery": m.registered_delivery,
        "replace_if_present": m.replace_if_present,
        "data_coding": m.data_coding,
        "sm_default_msg_id": m.sm_default_msg_id,
        "short_message": m.short_message.hex(),
        "message_payload": _hex(m.message_payload),
        "udh": _hex(m.udh),
        "concat": None if c is None else [c.ref, c.total, c.seq, c.ref_bits, c.source],
        "received_at": m.received_at,
        "tlvs": {str(tag): value.hex() for tag, value in m.tlvs.items()},
    }


class RecordError(ValueError):
    """A record that is not an AcceptedMessage we can read."""


def decode(raw: bytes) -> AcceptedMessage:
    try:
        d = orjson.loads(raw)
    except ValueError as exc:
        raise RecordError(f"unreadable message record: {exc}") from exc
    return from_dict(d)


def from_dict(d: dict[str, Any]) -> AcceptedMessage:
    try:
        if d.get("v") != RECORD_VERSION:
            raise RecordError(f"unsupported record version {d.get('v')!r}")
        c = d["concat"]
        return AcceptedMessage(
            id=d["id"],
            customer=d["customer"],
            bind=d["bind"],
            command=d["command"],
            source=Address(*d["src"]),
            destination=Address(*d["dst"]),
            service_type=d["service_type"],
            esm_class=d["esm_class"],
            protocol_id=d["protocol_id"],
            priority=d["priority"],
            schedule_delivery_time=d["schedule"],
            validity_period=d["validity"],
            registered_delivery=d["registered_delivery"],
            replace_if_present=d["replace_if_present"],
            data_coding=d["data_coding"],
            sm_default_msg_id=d["sm_default_msg_id"],
            short_message=bytes.fromhex(d["short_message"]),
            message_payload=None
            if d["message_payload"] is None
            else bytes.fromhex(d["message_payload"]),
            udh=None if d["udh"] is None else bytes.fromhex(d["udh"]),
            concat=None if c is None else Concat(*c),
            received_at=d["received_at"],
            tlvs={int(k): bytes.fromhex(v) for k, v in d["tlvs"].items()},
        )
    except RecordError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"unreadable message record: {exc}") from exc


# A withdrawal marker on ``submit`` (issue 10 item 8): the listener answered an
# error for this record, whose produce outcome was unknown; if the record reached
# Kafka all the same, it must not be sent. Same key as the message, so the same
# partition, after the message. Recognised by its first octets (no decode needed).
WITHDRAW_PREFIX = b'{"withdraw":'


@dataclass(frozen=True, slots=True)
class Withdrawal:
    id: str
    customer: str
    source_addr: str
    at: float

    def encode(self) -> bytes:
        return orjson.dumps(
            {"withdraw": self.id, "customer": self.customer, "src": self.source_addr, "at": self.at}
        )

    @classmethod
    def decode(cls, raw: bytes) -> Withdrawal:
        try:
            d = orjson.loads(raw)
            return cls(d["withdraw"], d["customer"], d["src"], d["at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"unreadable withdrawal: {exc}") from exc


# Routed this long after acceptance, a message may yet be answered with an error
# (its listener answers at the produce timeout): routers remember it for its
# marker and provider binds hold it (smsgw.pipeline.outbox.withdrawal_hold_s).
# A record the dead leader had replicated becomes readable on the new leader
# only after the broker's session timeout (3 s embedded, 9 s Kafka's default)
# and the election, while its producer's answer is still pending: at 4 s (the
# produce timeout less 1 s) 21 such records in one submit-leader kill were sent
# and refused at 5 s. Normal routing takes tens of ms.
LATE_AFTER_MAX_S = 2.0


def late_after_s(produce_timeout_s: float) -> float:
    """Seconds after acceptance from which a routed message counts as late."""
    return max(0.0, min(LATE_AFTER_MAX_S, produce_timeout_s - 1.0))


def is_withdrawal(raw: bytes | None) -> bool:
    return raw is not None and raw.startswith(WITHDRAW_PREFIX)
