"""The history stage against an in-memory log: every topic's records become rows once.

``HistoryStage`` below does what ``smsgw.pipeline.history.HistoryWriter``
does around ``smsgw.history.events_from``: its group reads the message topics
(``out.<provider>`` by pattern, so a provider added later is read too), turns
each record into rows, writes the batch (rows unique on their source,
``topic:partition:offset``: PostgreSQL's ``ON CONFLICT DO NOTHING``), and only
then commits the batch's offsets. A crash between the write and the commit
replays the batch, which adds nothing.
"""

from __future__ import annotations

import re

from smsgw import message
from smsgw.history import Event, events_from, story
from smsgw.pipeline.history import history_topics
from smsgw.records import Delivery, Pairing, Routed
from smsgw.state import MessageState, StateRecord
from smsgw.topics import Topics
from tests.helpers.memlog import MemLog, Record, next_offsets
from tests.helpers.messages import accepted_message

TOPICS = Topics("t.")
GROUP = "history"
T0 = 1_000.0


class HistoryStage:
    def __init__(self, log: MemLog, rows: dict[str, Event]) -> None:
        self.log = log
        self.rows = rows  # the message_event table, unique on src

    def topics(self) -> list[str]:
        """What the stage's subscription (``history_topics``) matches in the log now:
        its topics by name, and by pattern every ``out.<provider>`` there is."""
        names = [t for t in history_topics(TOPICS) if not t.startswith("^")]
        patterns = [re.compile(t) for t in history_topics(TOPICS) if t.startswith("^")]
        matched = sorted(t for t in self.log.topics if any(p.match(t) for p in patterns))
        return names + matched

    def poll(self, *, crash_before_commit: bool = False) -> list[Record]:
        batch = [r for t in self.topics() for r in self.log.unread(GROUP, t)]
        for r in batch:
            src = f"{r.topic}:{r.partition}:{r.offset}"
            for event in events_from(TOPICS, r.topic, r.key, r.value, src, T0):
                self.rows.setdefault(event.src, event)  # INSERT ... ON CONFLICT DO NOTHING
        if not crash_before_commit:
            self.log.commit(GROUP, next_offsets(batch))
        return batch


def _a_delivered_message(log: MemLog, mid: str, provider: str = "p") -> None:
    """A message's records on every topic, as the stages write them."""
    m = accepted_message(mid, received_at=T0)
    pairing = Pairing(
        f"{provider}:7", provider, "7", mid, "acme", m.source, m.destination, 1, T0 + 1,
        bind=f"provider:{provider}#0",
    )  # fmt: skip
    delivered = StateRecord(
        mid, "acme", "ACME", MessageState.DELIVERED, T0 + 2, 0, "receipt", m.destination.addr
    )
    receipt = Delivery(
        f"r:{mid}", "receipt", "acme", m.destination, m.source, 4, 0, b"", created_at=T0 + 2,
        message_id=mid, state=int(MessageState.DELIVERED),
    )  # fmt: skip
    log.append(TOPICS.submit, m.kafka_key, message.encode(m))
    log.append(TOPICS.outbound(provider), m.kafka_key, Routed(m, provider, (), T0 + 0.5).encode())
    log.append(TOPICS.sent, pairing.key.encode(), pairing.encode())
    log.append(TOPICS.message_state, mid.encode(), delivered.encode())
    log.append(TOPICS.deliver, b"acme", receipt.encode())
    log.append(TOPICS.delivered, receipt.id.encode(), b"1")


def _story(rows: dict[str, Event], mid: str) -> dict[str, object]:
    """``message show``: the message's rows, and those joined to them through ``ref``
    (the provider's receipt, the customer's answer)."""
    refs = {e.ref for e in rows.values() if e.message_id == mid and e.ref}
    return story(mid, [e for e in rows.values() if e.message_id == mid or e.ref in refs])


def test_a_replayed_batch_adds_no_row_and_the_story_ends_delivered() -> None:
    log = MemLog()
    _a_delivered_message(log, "m1")
    rows: dict[str, Event] = {}
    batch = HistoryStage(log, rows).poll(crash_before_commit=True)
    written = dict(rows)
    assert len(batch) == 6 and len(written) == 6

    again = HistoryStage(log, rows).poll()  # restarted: from the committed offsets
    assert len(again) == 6 and rows == written
    assert all(log.lag(GROUP, t) == 0 for t in HistoryStage(log, rows).topics())
    s = _story(rows, "m1")
    assert s["state"] == "delivered" and s["customer"] == "acme"
    kinds = sorted(e["kind"] for e in s["events"])  # type: ignore[attr-defined]
    assert kinds == sorted(["accepted", "routed", "sent", "state", "deliver", "delivered"])


def test_a_provider_added_later_is_read_through_the_pattern() -> None:
    log = MemLog()
    rows: dict[str, Event] = {}
    stage = HistoryStage(log, rows)
    _a_delivered_message(log, "m1", provider="p")
    stage.poll()
    _a_delivered_message(log, "m2", provider="q")  # out.q did not exist before
    stage.poll()
    routed = {(e.message_id, e.provider) for e in rows.values() if e.kind == "routed"}
    assert routed == {("m1", "p"), ("m2", "q")}
    assert log.lag(GROUP, TOPICS.outbound("q")) == 0
