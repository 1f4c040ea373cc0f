"""What the gateway knows of each message's fate, for ``query_sm``.

Later stages (routing, provider connectors, receipts) publish state changes to
the compacted ``message-state`` topic keyed by gateway id; every node folds
them into this store. The listener records its own acceptances directly, so a
query right after the submit already finds the message.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import orjson


class MessageState(enum.IntEnum):
    """SMPP 3.4 message_state values (§5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8

    @property
    def final(self) -> bool:
        return self not in (MessageState.ENROUTE, MessageState.ACCEPTED, MessageState.UNKNOWN)


@dataclass(frozen=True, slots=True)
class StateRecord:
    id: str
    customer: str
    source_addr: str
    state: MessageState
    updated_at: float
    error_code: int = 0
    stage: str = "accepted"  # accepted, routed, sent, receipt, failed …
    # The handset a final state is about: a submit_multi's destinations share one id
    # (smsgw.server.connection), so the deliverer matches a receipt to the state shown
    # only for the same destination. "" in records written before it was kept.
    destination: str = ""

    def public(self) -> dict[str, object]:
        """For people (the console): the state by name, the source address masked."""
        src = self.source_addr
        masked = src[:4] + "*" * max(len(src) - 6, 0) + src[-2:] if len(src) > 6 else src
        shown = {**asdict(self), "state": self.state.name, "source_addr": masked}
        del shown["destination"]
        return shown

    def encode(self) -> bytes:
        record: dict[str, object] = {
            "id": self.id,
            "customer": self.customer,
            "src": self.source_addr,
            "state": int(self.state),
            "at": self.updated_at,
            "err": self.error_code,
            "stage": self.stage,
        }
        if self.destination:
            record["dst"] = self.destination
        return orjson.dumps(record)

    @classmethod
    def decode(cls, raw: bytes) -> StateRecord:
        d = orjson.loads(raw)
        return cls(
            id=d["id"],
            customer=d["customer"],
            source_addr=d["src"],
            state=MessageState(d["state"]),
            updated_at=d["at"],
            error_code=d.get("err", 0),
            stage=d.get("stage", ""),
            destination=d.get("dst", ""),
        )


class StateStore:
    """Bounded LRU of the newest state per message id."""

    def __init__(self, max_entries: int = 1_000_000, recent_failures: int = 50) -> None:
        self.max_entries = max_entries
        self._states: OrderedDict[str, StateRecord] = OrderedDict()
        # The newest messages that ended badly, for the operator console.
        self.failures: deque[StateRecord] = deque(maxlen=recent_failures)
        # Told the id of each message whose first final state is stored (the
        # deliverer's receipts that waited for it go then, not on a timer).
        self.on_final: list[Callable[[str], object]] = []

    def __len__(self) -> int:
        return len(self._states)

    def apply(self, record: StateRecord) -> StateRecord | None:
        """Keep the newer record; the first final state is never replaced.

        A message has one final state (issue 10): an outcome decided again after a
        crash, or a provider's second, contradicting receipt, does not change it.
        Returns the final record kept when ``record`` tells something else (see
        ``Restorer``), else None.
        """
        old = self._states.get(record.id)
        if old is not None:
            if old.state.final:
                return old if contradicts(record, old) else None
            newly_final = record.state.final and not old.state.final
            if record.updated_at < old.updated_at and not newly_final:
                return None
            self._states.move_to_end(record.id)
        failed = record.state.final and record.state != MessageState.DELIVERED
        if failed and (old is None or not old.state.final):
            self.failures.append(record)
        self._states[record.id] = record
        while len(self._states) > self.max_entries:
            self._states.popitem(last=False)
        if record.state.final:
            for tell in self.on_final:
                tell(record.id)
        return None

    def get(self, message_id: str) -> StateRecord | None:
        """Any customer's message (operators; query_sm uses ``lookup``)."""
        return self._states.get(message_id)

    def accepted(self, message_id: str, customer: str, source_addr: str) -> None:
        self.apply(
            StateRecord(message_id, customer, source_addr, MessageState.ENROUTE, time.time())
        )

    def lookup(self, message_id: str, customer: str, source_addr: str) -> StateRecord | None:
        """The state, if the message exists and belongs to this customer.

        SMPP's query_sm names the source address too; an empty one in the
        query matches any (many clients send it empty).
        """
        rec = self._states.get(message_id)
        if rec is None or rec.customer != customer:
            return None
        if source_addr and rec.source_addr and source_addr != rec.source_addr:
            return None
        return rec


def contradicts(record: StateRecord, final: StateRecord) -> bool:
    """Whether ``record``, read after ``final``, tells another outcome than it (what
    query_sm_resp shows: message_state and error_code, SMPP 3.4 §4.8.2)."""
    return record.state != final.state or record.error_code != final.error_code


# How long a follower waits before writing a message's first final state again
# (``Restorer``): a copy already on the topic behind the contradicting record is
# read well within it, and cancels the write.
RESTORE_AFTER_S = 2.0


class Restorer:
    """Which first final states a follower of ``message-state`` writes again.

    Compaction keeps the newest record per key, not the first final one: a state
    written after a message's first final state (a replayed bind's failure or
    "sent" after the first send's DELIVERED, a provider's second receipt) was all
    that a node rebuilding its store from the compacted topic found, and it showed
    that one (issue 10). The writers cannot see each other's outcomes (a bind, a
    correlator on other nodes); every follower reads each record in order, within
    ``min.compaction.lag.ms`` of its write (``Topics.specs``), and keeps the first
    final (``StateStore.apply``). So on reading a contradicting record it writes
    the first final again, behind it: the newest record of the key, which
    compaction keeps. A copy read within ``after_s`` (another node's, or written
    before a restart) cancels it; at worst a few identical copies are written.
    """

    def __init__(self, after_s: float = RESTORE_AFTER_S) -> None:
        self.after_s = after_s
        self.pending: dict[str, tuple[float, StateRecord]] = {}  # id -> (since, first final)

    def read(self, record: StateRecord, kept: StateRecord | None, now: float) -> None:
        """``record`` was applied; ``kept``: the final one it contradicted (``apply``)."""
        if kept is not None:
            self.pending.setdefault(record.id, (now, kept))
            return
        waiting = self.pending.get(record.id)
        if waiting is not None and not contradicts(record, waiting[1]):
            del self.pending[record.id]  # the first final is the newest record again

    def due(self, now: float) -> list[StateRecord]:
        """The first finals to write again now (each once)."""
        out = [kept for since, kept in self.pending.values() if now - since >= self.after_s]
        for kept in out:
            del self.pending[kept.id]
        return out


def smpp_date(ts: float) -> str:
    """SMPP absolute time (YYMMDDhhmmsstnnp) in UTC, for query_sm_resp final_date."""
    t = time.gmtime(ts)
    tenths = int((ts % 1) * 10)
    return time.strftime("%y%m%d%H%M%S", t) + f"{tenths}00+"


def count_final(counts: dict[str, int], state: MessageState, reason: str, n: int = 1) -> None:
    """Tally final states as ``"STATE|reason"`` (plain str keys: stats travel through Ray).

    Exported as ``smsgw_messages_final_total{state, reason}`` (smsgw.actors.metrics).
    """
    if state.final:
        key = f"{state.name}|{reason}"
        counts[key] = counts.get(key, 0) + n
