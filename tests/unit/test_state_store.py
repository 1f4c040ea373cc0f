from __future__ import annotations

from smsgw.state import MessageState, StateRecord, StateStore, smpp_date


def rec(mid: str, state: MessageState, at: float) -> StateRecord:
    return StateRecord(mid, "acme", "491", state, at)


def test_lookup_is_per_customer_and_source() -> None:
    s = StateStore()
    s.apply(rec("1", MessageState.ENROUTE, 1.0))
    assert s.lookup("1", "acme", "491") is not None
    assert s.lookup("1", "acme", "") is not None, "empty source in query_sm matches"
    assert s.lookup("1", "other", "491") is None, "customers see only their own messages"
    assert s.lookup("1", "acme", "999") is None
    assert s.lookup("2", "acme", "491") is None


def test_final_state_is_not_overwritten_by_a_late_intermediate_one() -> None:
    s = StateStore()
    s.apply(rec("1", MessageState.DELIVERED, 5.0))
    s.apply(rec("1", MessageState.ENROUTE, 6.0))
    got = s.lookup("1", "acme", "491")
    assert got is not None and got.state is MessageState.DELIVERED


def test_first_final_state_stays_when_a_second_one_arrives() -> None:
    """Issue 10: a replayed outcome or a provider's contradicting receipt keeps one final state."""
    s = StateStore()
    s.apply(rec("1", MessageState.UNDELIVERABLE, 5.0))
    s.apply(rec("1", MessageState.DELIVERED, 9.0))
    got = s.lookup("1", "acme", "491")
    assert got is not None and got.state is MessageState.UNDELIVERABLE


def test_older_update_does_not_replace_newer() -> None:
    s = StateStore()
    s.apply(rec("1", MessageState.ENROUTE, 5.0))
    s.apply(rec("1", MessageState.ACCEPTED, 4.0))
    got = s.lookup("1", "acme", "491")
    assert got is not None and got.state is MessageState.ENROUTE


def test_store_is_bounded_lru() -> None:
    s = StateStore(max_entries=3)
    for i in range(5):
        s.apply(rec(str(i), MessageState.ENROUTE, float(i)))
    assert len(s) == 3 and s.lookup("0", "acme", "491") is None


def test_record_codec_and_smpp_date() -> None:
    r = StateRecord("9", "c", "1", MessageState.UNDELIVERABLE, 1.25, 17, "receipt")
    assert StateRecord.decode(r.encode()) == r
    assert smpp_date(0.5) == "700101000000500+"


def test_a_final_state_keeps_its_destination_and_older_records_decode() -> None:
    """The destination travels as "dst" (for the deliverer's receipt check); records
    written before it decode with none; the console does not show it."""
    r = StateRecord("9", "c", "1", MessageState.DELIVERED, 1.0, 0, "receipt", "491701234567")
    assert StateRecord.decode(r.encode()) == r
    old = b'{"id":"9","customer":"c","src":"1","state":2,"at":1.0,"err":0,"stage":"receipt"}'
    assert StateRecord.decode(old).destination == ""
    assert "destination" not in r.public()
