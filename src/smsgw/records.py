"""Records on the topics after acceptance: routed, sent (pairing), inbound, deliver.

All versioned JSON, bytes in hex, like the submit record (smsgw.message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from smsgw.message import AcceptedMessage, from_dict, to_dict
from smsgw.smpp.submission import Address
from smsgw.state import MessageState


def _dumps(d: dict[str, Any]) -> bytes:
    return orjson.dumps(d)


def _addr(a: Address) -> list[Any]:
    return [a.addr, a.ton, a.npi]


@dataclass(frozen=True, slots=True)
class Routed:
    """An accepted message with its chosen provider (topic out.<provider>).

    A multipart message travels as one record: `parts` holds its segments in
    order (`message` is the first) and `duplicates` the extra copies a
    customer sent, whose ids get the receipt of their segment.
    """

    message: AcceptedMessage
    provider: str
    failover: tuple[str, ...] = ()
    routed_at: float = 0.0
    parts: tuple[AcceptedMessage, ...] = ()
    duplicates: tuple[AcceptedMessage, ...] = ()

    @property
    def segments(self) -> tuple[AcceptedMessage, ...]:
        return self.parts or (self.message,)

    def ids_by_seq(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for m in (*self.parts, *self.duplicates):
            if m.concat is not None:
                out.setdefault(m.concat.seq, []).append(m.id)
        return out

    def encode(self) -> bytes:
        d: dict[str, Any] = {
            "m": to_dict(self.message),
            "provider": self.provider,
            "failover": list(self.failover),
            "at": self.routed_at,
        }
        if self.parts:
            d["parts"] = [to_dict(m) for m in self.parts[1:]]
            d["dups"] = [to_dict(m) for m in self.duplicates]
        return _dumps(d)

    @classmethod
    def decode(cls, raw: bytes) -> Routed:
        d = orjson.loads(raw)
        first = from_dict(d["m"])
        parts: tuple[AcceptedMessage, ...] = ()
        if "parts" in d:
            parts = (first, *(from_dict(x) for x in d["parts"]))
        return cls(
            first,
            d["provider"],
            tuple(d["failover"]),
            d["at"],
            parts,
            tuple(from_dict(x) for x in d.get("dups", ())),
        )


@dataclass(frozen=True, slots=True)
class Pairing:
    """Provider message id -> gateway id and customer (compacted topic ``sent``).

    Keyed by ``provider:<normalised provider id>`` so that receipts, keyed the
    same way on ``inbound``, land on the same partition number.
    """

    key: str
    provider: str
    provider_id: str
    message_id: str
    customer: str
    source: Address
    destination: Address
    registered_delivery: int
    submitted_at: float
    text20: str = ""
    accepted_at: float = 0.0  # when the customer's submit was accepted (end-to-end latency)
    # More gateway ids answered by this provider message's receipt: duplicate
    # copies of a part, or customer parts of a message the gateway re-segmented.
    also: tuple[str, ...] = ()
    bind: str = ""  # which provider bind sent it (for `smsgw message show`)
    # The customer's session that submitted it (AcceptedMessage.bind): its receipt goes home there.
    session: str = ""

    @property
    def message_ids(self) -> tuple[str, ...]:
        return (self.message_id, *self.also) if self.message_id else self.also

    def encode(self) -> bytes:
        return _dumps(
            {
                "key": self.key,
                "provider": self.provider,
                "pid": self.provider_id,
                "id": self.message_id,
                "customer": self.customer,
                "src": _addr(self.source),
                "dst": _addr(self.destination),
                "rd": self.registered_delivery,
                "at": self.submitted_at,
                "text": self.text20,
                "acc": self.accepted_at,
                **({"also": list(self.also)} if self.also else {}),
                **({"bind": self.bind} if self.bind else {}),
                **({"ses": self.session} if self.session else {}),
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Pairing:
        d = orjson.loads(raw)
        return cls(
            d["key"],
            d["provider"],
            d["pid"],
            d["id"],
            d["customer"],
            Address(*d["src"]),
            Address(*d["dst"]),
            d["rd"],
            d["at"],
            d.get("text", ""),
            d.get("acc", 0.0),
            tuple(d.get("also", ())),
            d.get("bind", ""),
            d.get("ses", ""),
        )


@dataclass(frozen=True, slots=True)
class InboundReceipt:
    """A provider's receipt as received (topic ``inbound``), keyed like Pairing."""

    key: str
    provider: str
    provider_id: str
    state: MessageState
    err: str
    network_error: bytes | None
    received_at: float
    # The other candidate key when the receipt's TLV and text ids disagree, and
    # whether the correlator already handed it on to that key's partition.
    alt: str | None = None
    forwarded: bool = False
    handset: str = ""  # the receipt's source_addr: the paired message's destination

    def encode(self) -> bytes:
        d = {
            "key": self.key,
            "provider": self.provider,
            "pid": self.provider_id,
            "state": int(self.state),
            "err": self.err,
            "nec": None if self.network_error is None else self.network_error.hex(),
            "at": self.received_at,
        }
        if self.alt:
            d["alt"] = self.alt
        if self.forwarded:
            d["fwd"] = True
        if self.handset:
            d["hs"] = self.handset
        return _dumps(d)

    @classmethod
    def decode(cls, raw: bytes) -> InboundReceipt:
        d = orjson.loads(raw)
        nec = d.get("nec")
        return cls(
            d["key"],
            d["provider"],
            d["pid"],
            MessageState(d["state"]),
            d["err"],
            None if nec is None else bytes.fromhex(nec),
            d["at"],
            d.get("alt"),
            bool(d.get("fwd", False)),
            d.get("hs", ""),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """A deliver_sm owed to a customer: a receipt or an MO (topic ``deliver``, keyed by customer).

    ``id`` is what makes a redelivery after a crash recognisable: a receipt's
    is derived from the gateway id and its state, an MO's from the provider.
    """

    id: str
    kind: str  # "receipt" or "mo"
    customer: str
    source: Address
    destination: Address
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: tuple[tuple[int, bytes], ...] = ()
    created_at: float = 0.0
    expires_at: float = 0.0
    message_id: str = ""  # the gateway id a receipt is about
    state: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # A receipt's submitting session ("<node>/<incarnation>/<n>"): delivered there while it
    # is bound, to any receiving bind of the customer once it is gone. "" for MO: any bind.
    session: str = ""

    def encode(self) -> bytes:
        return _dumps(
            {
                "id": self.id,
                "kind": self.kind,
                "customer": self.customer,
                "src": _addr(self.source),
                "dst": _addr(self.destination),
                "esm_class": self.esm_class,
                "dcs": self.data_coding,
                "sm": self.short_message.hex(),
                "tlvs": [[t, v.hex()] for t, v in self.tlvs],
                "created": self.created_at,
                "expires": self.expires_at,
                "mid": self.message_id,
                "state": self.state,
                "extra": self.extra,
                **({"ses": self.session} if self.session else {}),
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Delivery:
        d = orjson.loads(raw)
        return cls(
            id=d["id"],
            kind=d["kind"],
            customer=d["customer"],
            source=Address(*d["src"]),
            destination=Address(*d["dst"]),
            esm_class=d["esm_class"],
            data_coding=d["dcs"],
            short_message=bytes.fromhex(d["sm"]),
            tlvs=tuple((t, bytes.fromhex(v)) for t, v in d["tlvs"]),
            created_at=d["created"],
            expires_at=d["expires"],
            message_id=d["mid"],
            state=d["state"],
            extra=d.get("extra", {}),
            session=d.get("ses", ""),
        )
