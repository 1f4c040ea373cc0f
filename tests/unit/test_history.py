"""Message history: topic records become rows, rows read as one story with its final state."""

from __future__ import annotations

import pytest

from smsgw import message
from smsgw.history import events_from, format_story, mask, parse_since, story
from smsgw.records import Delivery, InboundReceipt, Pairing, Routed
from smsgw.smpp.submission import Address
from smsgw.state import MessageState, StateRecord
from smsgw.topics import Topics
from tests.helpers.messages import accepted_message

T = Topics("t.")


def _all_events(mid: str, final: StateRecord) -> list:  # type: ignore[type-arg]
    m = accepted_message(mid, received_at=100.0)
    pairing = Pairing(
        "smsc1:abc", "smsc1", "ABC", mid, "acme", m.source, m.destination, 1, 101.0,
        bind="provider:smsc1#0",
    )  # fmt: skip
    receipt = InboundReceipt("smsc1:abc", "smsc1", "ABC", final.state, "000", None, 102.0)
    delivery = Delivery(
        f"r:{mid}", "receipt", "acme", m.destination, m.source, 4, 0, b"", created_at=102.5,
        message_id=mid, state=int(final.state),
    )  # fmt: skip
    records = [
        (T.submit, m.kafka_key, message.encode(m)),
        (T.outbound("smsc1"), m.kafka_key, Routed(m, "smsc1", ("smsc2",), 100.5).encode()),
        (T.sent, b"smsc1:abc", pairing.encode()),
        (T.inbound, b"smsc1:abc", receipt.encode()),
        (T.message_state, mid.encode(), final.encode()),
        (T.deliver, b"acme", delivery.encode()),
        (T.delivered, f"r:{mid}".encode(), b"1"),
    ]
    out = []
    for i, (topic, key, value) in enumerate(records):
        out += events_from(T, topic, key, value, f"{topic}:0:{i}", 103.0)
    return out


def test_every_topic_record_becomes_its_event() -> None:
    final = StateRecord("m1", "acme", "ACME", MessageState.DELIVERED, 102.1, 0, "receipt")
    events = _all_events("m1", final)
    assert [e.kind for e in events] == [
        "accepted", "routed", "sent", "receipt", "state", "deliver", "delivered"
    ]  # fmt: skip
    by_kind = {e.kind: e for e in events}
    assert by_kind["accepted"].detail["dst"] == "491701234567"
    assert by_kind["sent"].detail["bind"] == "provider:smsc1#0"
    assert by_kind["receipt"].message_id == "" and by_kind["receipt"].ref == "smsc1:abc"
    assert by_kind["delivered"].ref == by_kind["deliver"].ref == "dlv:r:m1"
    assert len({e.src for e in events}) == len(events)


def test_tombstones_and_forwarded_receipts_add_nothing() -> None:
    assert events_from(T, T.sent, b"k", None, "s", 1.0) == []
    fwd = InboundReceipt("p:1", "p", "1", MessageState.DELIVERED, "000", None, 1.0, forwarded=True)
    assert events_from(T, T.inbound, b"p:1", fwd.encode(), "s", 1.0) == []


def test_story_of_a_delivered_message_masks_numbers_unless_asked() -> None:
    final = StateRecord("m1", "acme", "ACME", MessageState.DELIVERED, 102.1, 0, "receipt")
    s = story("m1", _all_events("m1", final))
    assert s["state"] == "delivered"
    assert s["why"] == "the provider's delivery receipt"
    assert s["destination"] == "4917******67"
    assert s["provider"] == "smsc1" and s["provider_id"] == "ABC"
    assert s["events"][-1] == {"at": s["events"][-1]["at"], "kind": "delivered",
                               "outcome": "delivered"}  # fmt: skip
    assert story("m1", _all_events("m1", final), unmask=True)["destination"] == "491701234567"
    text = format_story(s)
    assert "final state  delivered" in text and "bind=provider:smsc1#0" in text
    assert "491701234567" not in text


def test_a_final_state_is_not_overwritten_by_a_later_non_final_one() -> None:
    refused = StateRecord("m2", "acme", "", MessageState.UNDELIVERABLE, 50.0, 0x45, "refused")
    late = StateRecord("m2", "acme", "", MessageState.ENROUTE, 60.0, 0, "sent")
    events = [
        *events_from(T, T.message_state, b"m2", refused.encode(), "a", 0),
        *events_from(T, T.message_state, b"m2", late.encode(), "b", 0),
    ]
    s = story("m2", events)
    assert s["state"] == "undeliverable"
    assert s["why"] == "the provider refused the submit_sm (error 0x45)"


def test_unknown_message() -> None:
    s = story("nope", [])
    assert s["state"] == "unknown" and s["events"] == []


@pytest.mark.parametrize(
    ("addr", "masked"),
    [("491701234567", "4917******67"), ("+4915112345678", "+491********78"), ("ACME", "ACME"),
     ("12345", "12345"), ("", "")],
)  # fmt: skip
def test_mask(addr: str, masked: str) -> None:
    assert mask(addr) == masked


def test_parse_since() -> None:
    assert parse_since("10m") == 600
    assert parse_since("2h") == 7200
    assert parse_since("1d") == 86400
    assert parse_since("45") == 45
    with pytest.raises(ValueError, match="not a duration"):
        parse_since("ten minutes")


def test_addresses_in_accepted_rows_are_plain_strings() -> None:
    m = accepted_message("m3", source=Address("4930123456", 1, 1))
    (e,) = events_from(T, T.submit, b"m3", message.encode(m), "s", 0)
    assert e.detail["src"] == "4930123456"
