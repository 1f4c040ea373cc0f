from __future__ import annotations

import dataclasses

from smsgw.state import MessageState, Restorer, StateRecord, StateStore, smpp_date


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


def _compacted(records: list[StateRecord]) -> StateStore:
    """A store rebuilt from the topic after compaction: only the newest record per key."""
    newest = {r.id: r for r in records}
    s = StateStore()
    for r in newest.values():
        s.apply(r)
    return s


def _follow(records: list[StateRecord], writes: list[StateRecord], restorer: Restorer) -> None:
    """One follower reading ``records`` in order, one second apart; what it writes
    again is appended to ``writes`` (the topic) and read in turn."""
    s = StateStore()
    i, now = 0, 0.0
    while i < len(records):
        r = records[i]
        restorer.read(r, s.apply(r), now)
        now += 1.0
        i += 1
        writes.extend(restorer.due(now))


def test_a_contradicted_first_final_state_is_the_newest_record_again() -> None:
    """Issue 10: DELIVERED, then a replayed bind's UNDELIVERABLE (err 906) on the
    compacted topic; a node rebuilding its store after compaction found only the
    second and showed it. The follower writes DELIVERED again behind it."""
    topic = [
        rec("1", MessageState.ENROUTE, 1.0),
        rec("1", MessageState.DELIVERED, 2.0),
        dataclasses.replace(rec("1", MessageState.UNDELIVERABLE, 3.0), error_code=906),
        rec("2", MessageState.ENROUTE, 3.5),
    ]
    restorer = Restorer(after_s=2.0)
    _follow(topic, topic, restorer)
    got = _compacted(topic).get("1")
    assert got is not None and got.state is MessageState.DELIVERED and got.updated_at == 2.0
    assert [r.id for r in topic[4:]] == ["1"], "written again once"


def test_a_state_not_final_after_the_final_one_is_followed_by_it_again() -> None:
    """A resend's "sent" (ENROUTE) after DELIVERED: compaction kept ENROUTE."""
    topic = [rec("1", MessageState.DELIVERED, 2.0), rec("1", MessageState.ENROUTE, 3.0)]
    _follow(topic, topic, Restorer(after_s=0.0))
    got = _compacted(topic).get("1")
    assert got is not None and got.state is MessageState.DELIVERED


def test_a_copy_already_on_the_topic_cancels_the_write() -> None:
    """Another node (or this one before a restart) wrote the first final again: the
    follower reads it behind the contradiction and writes nothing; the same final
    state read twice is no contradiction either."""
    first = rec("1", MessageState.DELIVERED, 2.0)
    topic = [
        first,
        first,
        rec("1", MessageState.UNDELIVERABLE, 3.0),
        rec("2", MessageState.ENROUTE, 3.5),
        first,
        rec("3", MessageState.ENROUTE, 4.0),
        rec("4", MessageState.ENROUTE, 4.5),
    ]
    writes: list[StateRecord] = []
    _follow(topic, writes, Restorer(after_s=2.5))
    assert writes == []


def test_apply_names_the_final_state_a_record_contradicts() -> None:
    s = StateStore()
    first = rec("1", MessageState.EXPIRED, 2.0)
    assert s.apply(rec("1", MessageState.ENROUTE, 1.0)) is None
    assert s.apply(first) is None
    assert s.apply(first) is None
    assert s.apply(rec("1", MessageState.DELIVERED, 3.0)) == first
    assert s.apply(dataclasses.replace(first, error_code=8)) == first
