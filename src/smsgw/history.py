"""One message's history, for a person: events read from the data-plane topics.

Pure functions: which rows a topic record becomes (the history stage writes
them to PostgreSQL in batches), how addresses are masked, and how a
message's rows read as one story with a final state and why.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from smsgw import message
from smsgw.records import Delivery, InboundReceipt, Pairing, Routed
from smsgw.state import MessageState, StateRecord
from smsgw.topics import Topics

# The order events of one instant are told in (their timestamps may tie).
KIND_ORDER = {
    "accepted": 0,
    "routed": 1,
    "sent": 2,
    "receipt": 3,
    "state": 4,
    "deliver": 5,
    "delivered": 6,
}
FAILED_STATES = (
    MessageState.EXPIRED,
    MessageState.DELETED,
    MessageState.UNDELIVERABLE,
    MessageState.REJECTED,
)
# What the stage names of message-state records mean (router, binds, correlator).
WHY = {
    "no-route": "no route matches the destination",
    "refused": "the provider refused the submit_sm",
    "receipt": "the provider's delivery receipt",
    "duplicate": "a late copy of parts already sent",
    "expired": "the message expired before it could be sent",
}


@dataclass(frozen=True, slots=True)
class Event:
    """One row of ``message_event``."""

    at: float
    message_id: str
    kind: str
    src: str
    customer: str = ""
    provider: str = ""
    ref: str = ""
    state: int = 0
    error: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def row(self) -> tuple[Any, ...]:
        at = dt.datetime.fromtimestamp(self.at, dt.UTC)
        return (
            at,
            self.message_id,
            self.kind,
            self.customer,
            self.provider,
            self.ref,
            self.state,
            self.error,
            orjson.dumps(self.detail).decode(),
            self.src,
        )


COLUMNS = (
    "at",
    "message_id",
    "kind",
    "customer",
    "provider",
    "ref",
    "state",
    "error",
    "detail",
    "src",
)


def _addr(a: Any) -> str:
    return str(a.addr)


def delivery_ref(delivery_id: str) -> str:
    return f"dlv:{delivery_id}"


def events_from(
    topics: Topics, topic: str, key: bytes | None, value: bytes | None, src: str, ts: float
) -> list[Event]:
    """The history rows of one topic record (none for tombstones and records of no interest).

    ``src`` (topic:partition:offset) makes each row unique, so a batch written
    twice after a crash adds nothing; ``ts`` is the record's Kafka timestamp,
    used when the record carries no time of its own.
    """
    if value is None:
        return []
    if topic == topics.submit:
        m = message.decode(value)
        detail: dict[str, Any] = {
            "src": _addr(m.source),
            "dst": _addr(m.destination),
            "bind": m.bind,
            "command": m.command,
            "registered_delivery": m.registered_delivery,
        }
        if m.concat is not None:
            detail["part"] = f"{m.concat.seq}/{m.concat.total}"
        return [Event(m.received_at or ts, m.id, "accepted", src, m.customer, detail=detail)]
    if topic.startswith(topics.outbound("")):
        r = Routed.decode(value)
        ids = [m.id for m in (*r.segments, *r.duplicates)]
        return [
            Event(
                r.routed_at or ts,
                mid,
                "routed",
                f"{src}:{i}",
                r.message.customer,
                r.provider,
                detail={"failover": list(r.failover)},
            )
            for i, mid in enumerate(ids)
        ]
    if topic == topics.sent:
        p = Pairing.decode(value)
        detail = {"provider_id": p.provider_id}
        if p.bind:
            detail["bind"] = p.bind
        return [
            Event(
                p.submitted_at or ts,
                mid,
                "sent",
                f"{src}:{i}",
                p.customer,
                p.provider,
                p.key,
                detail=detail,
            )
            for i, mid in enumerate(p.message_ids)
        ]
    if topic == topics.inbound:
        rc = InboundReceipt.decode(value)
        if rc.forwarded:
            return []  # the same receipt handed to its other key's partition
        return [
            Event(
                rc.received_at or ts,
                "",
                "receipt",
                src,
                provider=rc.provider,
                ref=rc.key,
                state=int(rc.state),
                error=int(rc.err) if rc.err.isdigit() else 0,
                detail={"provider_id": rc.provider_id, "err": rc.err},
            )
        ]
    if topic == topics.message_state:
        s = StateRecord.decode(value)
        return [
            Event(
                s.updated_at or ts,
                s.id,
                "state",
                src,
                s.customer,
                state=int(s.state),
                error=s.error_code,
                detail={"stage": s.stage},
            )
        ]
    if topic == topics.deliver:
        d = Delivery.decode(value)
        if d.kind != "receipt" or not d.message_id:
            return []
        return [
            Event(
                d.created_at or ts,
                d.message_id,
                "deliver",
                src,
                d.customer,
                ref=delivery_ref(d.id),
                state=d.state,
            )
        ]
    if topic == topics.delivered:
        outcome = "failed" if value == b"failed" else "delivered"
        did = (key or b"").decode("utf-8", "replace")
        return [Event(ts, "", "delivered", src, ref=delivery_ref(did), detail={"outcome": outcome})]
    return []


def mask(addr: str) -> str:
    """Keep the first 4 and last 2 digits of a phone number (enough to recognise a
    country and a line), hide the rest; short codes and alphanumeric senders are
    not personal and stay as they are."""
    digits = addr.lstrip("+")
    if len(digits) <= 6 or not digits.isdigit():
        return addr
    return addr[:4] + "*" * (len(addr) - 6) + addr[-2:]


def _state_name(state: int) -> str:
    try:
        return MessageState(state).name.lower()
    except ValueError:
        return str(state)


def story(message_id: str, events: list[Event], *, unmask: bool = False) -> dict[str, Any]:
    """A message's history as one document (``--json``; the text form prints it)."""
    evs = sorted(events, key=lambda e: (e.at, KIND_ORDER.get(e.kind, 9)))
    out: dict[str, Any] = {"id": message_id, "events": []}
    final: Event | None = None
    last_state: Event | None = None
    for e in evs:
        d: dict[str, Any] = {
            "at": dt.datetime.fromtimestamp(e.at, dt.UTC).isoformat(timespec="milliseconds"),
            "kind": e.kind,
        }
        if e.kind == "accepted":
            out["customer"] = e.customer
            src, dst = str(e.detail.get("src", "")), str(e.detail.get("dst", ""))
            out["source"] = src if unmask else mask(src)
            out["destination"] = dst if unmask else mask(dst)
            d.update(customer=e.customer, source=out["source"], destination=out["destination"])
            d.update({k: e.detail[k] for k in ("bind", "command", "part") if k in e.detail})
        elif e.kind == "routed":
            d.update(provider=e.provider, failover=e.detail.get("failover", []))
        elif e.kind == "sent":
            out["provider"] = e.provider
            out["provider_id"] = e.detail.get("provider_id", "")
            d.update(provider=e.provider, provider_id=out["provider_id"])
            if "bind" in e.detail:
                d["bind"] = e.detail["bind"]
        elif e.kind == "receipt":
            d.update(provider=e.provider, state=_state_name(e.state), err=e.detail.get("err", ""))
        elif e.kind == "state":
            d.update(state=_state_name(e.state), stage=e.detail.get("stage", ""), error=e.error)
            last_state = e
            try:
                is_final = MessageState(e.state).final
            except ValueError:
                is_final = False
            if is_final:
                final = e  # events are in time order: the latest final state wins
        elif e.kind == "deliver":
            d.update(customer=e.customer, receipt_state=_state_name(e.state))
        elif e.kind == "delivered":
            d["outcome"] = e.detail.get("outcome", "")
        out["events"].append(d)
    chosen = final or last_state
    if chosen is None:
        out["state"] = "accepted" if evs else "unknown"
        out["why"] = "no state change recorded yet" if evs else "no such message in the history"
    else:
        out["state"] = _state_name(chosen.state)
        stage = str(chosen.detail.get("stage", ""))
        why = WHY.get(stage, stage)
        if chosen.error:
            why += f" (error {chosen.error:#x})" if stage == "refused" else f" (err {chosen.error})"
        out["why"] = why
    return out


def format_story(s: dict[str, Any]) -> str:
    """The text form of ``story``: a header, then one line per event."""
    lines = [f"message {s['id']}"]
    for k in ("customer", "source", "destination", "provider", "provider_id"):
        if s.get(k):
            lines.append(f"  {k.replace('_', ' '):<12} {s[k]}")
    lines.append(f"  {'final state':<12} {s['state']}: {s['why']}")
    lines.append("history:")
    for e in s["events"]:
        rest = " ".join(f"{k}={_cell(v)}" for k, v in e.items() if k not in ("at", "kind"))
        lines.append(f"  {e['at']}  {e['kind']:<9} {rest}")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(str(x) for x in v) or "-"
    return str(v)


def is_failed(state: int) -> bool:
    return state in {int(s) for s in FAILED_STATES}


def parse_since(text: str) -> float:
    """``10m``, ``2h``, ``1d``, ``30s`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (try 10m, 2h, 1d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
