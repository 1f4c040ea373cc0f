"""What a load run measured: latencies, counts, receipt matching.

Receipts are matched by the exact message id of submit_sm_resp: the
receipted_message_id TLV wins, the `id:` of the Appendix B text is the
fallback. A receipt may overtake its submit_sm_resp (a real race), so it
waits in `early` until the resp names its id.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smsgw.smpp import Pdu

TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427
ESM_TYPE_MASK = 0x3C
ESM_RECEIPT = 0x04
THROTTLED = 0x58
STATE_NAMES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_ID = re.compile(rb"\bid:(\S+)")
_STAT = re.compile(rb"\bstat:(\S+)")


def receipt_id_and_stat(pdu: Pdu) -> tuple[str, str]:
    """(message id, stat) of a receipt; TLVs win over the text, as Kannel does."""
    text = pdu.get_bytes("short_message")
    raw = pdu.tlv(TAG_RECEIPTED_MESSAGE_ID)
    if raw is not None:
        message_id = raw.rstrip(b"\0").decode("latin-1")
    else:
        m = _ID.search(text)
        message_id = m.group(1).decode("latin-1") if m else ""
    state = pdu.tlv(TAG_MESSAGE_STATE)
    if state:
        stat = STATE_NAMES.get(state[0], f"state{state[0]}")
    else:
        m = _STAT.search(text)
        stat = m.group(1).decode("latin-1") if m else "?"
    return message_id, stat


def _rank(data: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted, non-empty data."""
    n = len(data)
    return round(data[min(n - 1, max(0, int(q * n + 0.999999) - 1))], 3)


def percentiles(values: list[float]) -> dict[str, float | int]:
    """p50/p90/p95/p99/max (nearest rank) in milliseconds, plus the count."""
    if not values:
        return {"count": 0, "p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    data = sorted(values)
    return {
        "count": len(data),
        "p50": _rank(data, 0.5),
        "p90": _rank(data, 0.9),
        "p95": _rank(data, 0.95),
        "p99": _rank(data, 0.99),
        "max": _rank(data, 1.0),
    }


def bucket_percentiles(
    at: list[float], values: list[float], seconds: int, qs: tuple[float, ...] = (0.5, 0.99)
) -> dict[float, list[float | None]]:
    """Per whole second of `at` (seconds since t0): nearest-rank percentiles of `values`.

    `at[i]` is when `values[i]` was born (its submit); seconds with no value
    are None, values outside 0..seconds-1 are ignored.
    """
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for t, v in zip(at, values, strict=True):
        s = int(t)
        if 0 <= s < seconds:
            buckets[s].append(v)
    out: dict[float, list[float | None]] = {q: [] for q in qs}
    for bucket in buckets:
        bucket.sort()
        for q in qs:
            out[q].append(_rank(bucket, q) if bucket else None)
    return out


def counts_list(counter: Mapping[int, int], seconds: int) -> list[int]:
    """A {second: count} map as a dense list over 0..seconds-1."""
    return [counter.get(s, 0) for s in range(seconds)]


@dataclass(slots=True)
class Recorder:
    """Fed by the connections; lists of floats only, no object per message."""

    resp_ms: list[float] = field(default_factory=list)
    receipt_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    per_second_accepted: Counter[int] = field(default_factory=Counter)
    per_second_sent: Counter[int] = field(default_factory=Counter)
    per_second_rejected: Counter[int] = field(default_factory=Counter)
    per_second_receipts: Counter[int] = field(default_factory=Counter)  # matched, by arrival
    resp_at: list[float] = field(default_factory=list)  # submit time (s since t0) of resp_ms[i]
    receipt_at: list[float] = field(default_factory=list)  # ... of receipt_ms[i]
    receipt_stats: Counter[str] = field(default_factory=Counter)
    awaiting: dict[str, float] = field(default_factory=dict)  # id -> submit time
    early: dict[str, float] = field(default_factory=dict)  # id -> receipt arrival
    matched: set[str] = field(default_factory=set)
    sent: int = 0
    accepted: int = 0
    timeouts: int = 0
    receipts: int = 0
    duplicates: int = 0
    mo_received: int = 0
    first_submit: float = 0.0
    last_submit: float = 0.0
    last_resp: float = 0.0
    t0: float = 0.0

    def on_resp(
        self, status: int, message_id: str, sent_at: float, wants_receipt: bool, now: float
    ) -> None:
        self.resp_ms.append((now - sent_at) * 1000.0)
        self.resp_at.append(sent_at - self.t0)
        self.last_resp = now
        if status:
            self.statuses[status] += 1
            self.per_second_rejected[int(now - self.t0)] += 1
            return
        self.accepted += 1
        self.per_second_accepted[int(now - self.t0)] += 1
        if not wants_receipt:
            return
        arrived = self.early.pop(message_id, None)
        if arrived is None:
            self.awaiting[message_id] = sent_at
        else:
            self._matched(message_id, sent_at, arrived)

    def _matched(self, message_id: str, sent_at: float, arrived: float) -> None:
        self.receipt_ms.append((arrived - sent_at) * 1000.0)
        self.receipt_at.append(sent_at - self.t0)
        self.per_second_receipts[int(arrived - self.t0)] += 1
        self.matched.add(message_id)

    def on_deliver(self, pdu: Pdu, now: float) -> None:
        if pdu.get_int("esm_class") & ESM_TYPE_MASK != ESM_RECEIPT:
            self.mo_received += 1
            return
        self.receipts += 1
        message_id, stat = receipt_id_and_stat(pdu)
        self.receipt_stats[stat] += 1
        sent_at = self.awaiting.pop(message_id, None)
        if sent_at is not None:
            self._matched(message_id, sent_at, now)
        elif message_id in self.matched or message_id in self.early:
            self.duplicates += 1
        else:
            self.early[message_id] = now

    def per_second(self) -> dict[str, list[Any]]:
        """Dense per-second series (index = whole seconds since t0), for plots.

        sent/accepted/rejected count submits by the second they were sent or
        answered, receipts count matched receipts by arrival; the latency
        percentiles are of the messages *submitted* in that second (None: none).
        """
        counters = (
            self.per_second_sent,
            self.per_second_accepted,
            self.per_second_rejected,
            self.per_second_receipts,
        )
        last = max((max(c, default=-1) for c in counters), default=-1)
        seconds = last + 1
        resp = bucket_percentiles(self.resp_at, self.resp_ms, seconds)
        receipt = bucket_percentiles(self.receipt_at, self.receipt_ms, seconds)
        return {
            "second": list(range(seconds)),
            "sent": counts_list(self.per_second_sent, seconds),
            "accepted": counts_list(self.per_second_accepted, seconds),
            "rejected": counts_list(self.per_second_rejected, seconds),
            "receipts": counts_list(self.per_second_receipts, seconds),
            "resp_p50_ms": resp[0.5],
            "resp_p99_ms": resp[0.99],
            "receipt_p50_ms": receipt[0.5],
            "receipt_p99_ms": receipt[0.99],
        }

    @property
    def throttled(self) -> int:
        return self.statuses.get(THROTTLED, 0)

    @property
    def rejected(self) -> int:
        return sum(self.statuses.values()) - self.throttled


@dataclass(frozen=True)
class LoadResult:
    """Summary of one run; `to_dict()` is the JSON the CLI writes."""

    config: dict[str, Any]
    messages: int
    submits: int
    accepted: int
    throttled: int
    rejected: int
    rejected_by_status: dict[str, int]
    timeouts: int
    send_seconds: float
    offered_rate: float
    accepted_per_s: float
    receipts: int
    receipts_expected: int | None
    receipts_matched: int
    receipts_missing: int | None
    receipts_duplicate: int
    receipts_unmatched: int
    receipt_stats: dict[str, int]
    mo_received: int
    submit_resp_latency_ms: dict[str, float | int]
    receipt_latency_ms: dict[str, float | int]
    per_second_accepted: dict[int, int]
    t0_unix: float = 0.0  # wall clock of second 0 of the series
    per_second: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
