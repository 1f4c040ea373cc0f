"""smsgw.assembly: order, duplicates, changelog persistence, expiry, revocation, restore."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.assembly import Assembled, Assembler, ChangelogValue, changelog_key, decode_changelog
from smsgw.message import AcceptedMessage, decode, encode
from smsgw.smpp.submission import Address
from smsgw.smpp.udh import Concat
from tests.helpers.depth import examples
from tests.helpers.messages import accepted_message

fast = settings(deadline=None, max_examples=examples(150))
Record = tuple[int, bytes, ChangelogValue]


def part(
    mid: str,
    seq: int,
    total: int = 3,
    *,
    ref: int = 7,
    ref_bits: int = 8,
    source: str = "udh",
    customer: str = "acme",
    dst: str = "491701234567",
    received_at: float = 1000.0,
    body: bytes = b"",
) -> AcceptedMessage:
    """One customer part; `body` lets two copies of a segment differ."""
    concat = Concat(ref, total, seq, ref_bits, source)
    udh = bytes((0x05, 0x00, 0x03, ref & 0xFF, total, seq)) if source == "udh" else None
    return accepted_message(
        mid,
        customer=customer,
        destination=Address(dst, 1, 1),
        esm_class=0x40 if udh else 0,
        short_message=(udh or b"") + (body or f"part {seq}".encode()),
        udh=udh,
        concat=concat,
        received_at=received_at,
    )


def single(mid: str) -> AcceptedMessage:
    return dataclasses.replace(part(mid, 1, 1), concat=None, udh=None, esm_class=0)


def seqs(parts: tuple[AcceptedMessage, ...]) -> list[int]:
    return [m.concat.seq for m in parts if m.concat is not None]


def ids(parts: tuple[AcceptedMessage, ...]) -> list[str]:
    return [m.id for m in parts]


def assert_empty(a: Assembler) -> None:
    assert len(a) == 0
    assert a.parts_held == 0
    assert a.unpersisted() == []
    assert a.expire(float("inf")) == []


# ------------------------------------------------------------------ completion


@pytest.mark.parametrize("order", list(itertools.permutations([1, 2, 3])))
def test_parts_in_any_order_complete_exactly_once_in_seq_order(order: tuple[int, ...]) -> None:
    a = Assembler(expiry_s=600)
    msgs = {s: part(f"id{s}", s) for s in (1, 2, 3)}
    results = [a.add(msgs[s], partition=4) for s in order]
    assert results[:-1] == [None, None]
    whole = results[-1]
    assert whole is not None
    assert whole.complete
    assert whole.parts == (msgs[1], msgs[2], msgs[3])
    assert whole.duplicates == ()
    assert whole.all_parts == whole.parts
    assert whole.tombstones == ()  # nothing was written to the changelog
    assert whole.key == msgs[1].concat_key
    assert whole.partition == 4
    assert_empty(a)


def test_len_and_parts_held_track_incomplete_messages() -> None:
    a = Assembler(expiry_s=600)
    assert len(a) == 0 and a.parts_held == 0
    a.add(part("a1", 1), 0)
    assert (len(a), a.parts_held) == (1, 1)
    a.add(part("a2", 2), 0)
    assert (len(a), a.parts_held) == (1, 2)
    a.add(part("b1", 1, ref=8), 0)
    assert (len(a), a.parts_held) == (2, 3)
    a.add(part("a2bis", 2), 0)  # a duplicate is held too
    assert (len(a), a.parts_held) == (2, 4)
    assert a.add(part("a3", 3), 0) is not None
    assert (len(a), a.parts_held) == (1, 1)


def test_every_element_of_the_concat_key_separates_messages() -> None:
    """Same ref, but another customer, destination, ref size or total: other messages."""
    a = Assembler(expiry_s=600)
    others = [
        part("x", 1, customer="other"),
        part("x", 1, dst="33600000000"),
        part("x", 1, ref_bits=16),
        part("x", 1, total=4),
        part("x", 1, ref=8),
    ]
    base = [part("b1", 1), part("b2", 2)]
    for m in [*base, *others]:
        assert a.add(m, 0) is None
    assert len(a) == 1 + len(others)
    whole = a.add(part("b3", 3), 0)
    assert whole is not None and ids(whole.parts) == ["b1", "b2", "b3"]
    assert len(a) == len(others)


def test_parts_from_different_binds_and_sar_complete_together() -> None:
    """The key ignores which bind accepted a part; SAR parts assemble the same way."""
    a = Assembler(expiry_s=600)
    p1 = part("s1", 1, 2, ref=0xBEEF, ref_bits=16, source="sar")
    p2 = dataclasses.replace(
        part("s2", 2, 2, ref=0xBEEF, ref_bits=16, source="sar"), bind="node-2/x"
    )
    assert a.add(p2, 1) is None
    whole = a.add(p1, 1)
    assert whole is not None and whole.parts == (p1, p2)


def test_duplicates_ride_along_first_copy_wins() -> None:
    a = Assembler(expiry_s=600)
    first = part("p1", 1, body=b"first copy")
    again = part("p1-again", 1, body=b"second copy")
    third = part("p1-third", 1, body=b"third copy")
    dup2 = part("p2-again", 2)
    assert a.add(first, 0) is None
    assert a.add(part("p2", 2), 0) is None
    assert a.add(again, 0) is None
    assert a.add(dup2, 0) is None
    assert a.add(third, 0) is None
    assert a.parts_held == 5 and len(a) == 1
    whole = a.add(part("p3", 3), 0)
    assert whole is not None and whole.complete
    assert ids(whole.parts) == ["p1", "p2", "p3"]
    assert whole.parts[0].short_message.endswith(b"first copy")
    assert whole.duplicates == (again, dup2, third)  # arrival order, ids kept
    assert ids(whole.all_parts) == ["p1", "p2", "p3", "p1-again", "p2-again", "p1-third"]
    assert_empty(a)


def test_late_copy_waits_like_a_new_message_and_expires_as_a_copy() -> None:
    """It may be the next message's identical part: held, and only on expiry called a copy."""
    a = Assembler(expiry_s=60)
    for s in (1, 2):
        a.add(part(f"p{s}", s, received_at=1000.0), 0)
    assert a.add(part("p3", 3, received_at=1000.0), 0) is not None
    assert a.add(part("p3-late", 3, received_at=1010.0), 0) is None
    assert (len(a), a.parts_held) == (1, 1)
    (late,) = a.expire(now=1010.0 + 61)
    assert late.duplicate_of == "p3" and not late.complete and late.ids == ["p3-late"]
    assert_empty(a)


def test_next_message_with_an_identical_part_completes_normally() -> None:
    """8-bit references wrap: same key, part 2 byte-identical, part 1 different."""
    a = Assembler(expiry_s=600)
    for s in (1, 2, 3):
        a.add(part(f"p{s}", s), 0)
    assert a.add(part("q2", 2), 0) is None  # looks like a copy of p2 ...
    assert a.add(part("q3", 3), 0) is None
    whole = a.add(part("q1", 1, body=b"another first part"), 0)
    assert whole is not None and whole.complete and ids(whole.parts) == ["q1", "q2", "q3"]


def test_expired_parts_that_differ_are_incomplete_not_copies() -> None:
    a = Assembler(expiry_s=60)
    for s in (1, 2, 3):
        a.add(part(f"p{s}", s, received_at=1000.0), 0)
    a.add(part("q2", 2, received_at=1001.0), 0)
    a.add(part("q3", 3, received_at=1001.0, body=b"new text"), 0)
    (expired,) = a.expire(now=1001.0 + 61)
    assert expired.duplicate_of is None and not expired.complete


def test_memory_of_routed_messages_ends_after_twice_the_expiry_time() -> None:
    a = Assembler(expiry_s=60)
    for s in (1, 2, 3):
        a.add(part(f"p{s}", s, received_at=1000.0), 0)
    a.markers()
    a.expire(now=1000.0 + 61)
    assert a.markers() == [], "still remembered"
    a.expire(now=1000.0 + 121)
    assert [v for _, _, v in a.markers()] == [None], "forgotten, and tombstoned"
    a.add(part("p3-late", 3, received_at=1200.0), 0)
    (late,) = a.expire(now=1200.0 + 61)
    assert late.duplicate_of is None


def test_non_concatenated_message_raises() -> None:
    a = Assembler(expiry_s=600)
    with pytest.raises(ValueError, match="not a part of a concatenated message"):
        a.add(single("solo"), 0)
    assert_empty(a)


# ------------------------------------------------------- changelog persistence


def test_unpersisted_returns_each_held_part_once_and_marks_it() -> None:
    a = Assembler(expiry_s=600)
    a1, a2 = part("a1", 1), part("a2", 2)
    b1 = part("b1", 1, ref=9)
    a1dup = part("a1-again", 1)
    a.add(a1, 3)
    a.add(b1, 5)
    a.add(a1dup, 3)
    first = a.unpersisted()
    assert sorted(first, key=lambda r: r[1].id) == [(3, a1), (3, a1dup), (5, b1)]
    assert a.unpersisted() == []
    a.add(a2, 3)
    assert a.unpersisted() == [(3, a2)]
    assert a.unpersisted() == []
    # Marking does not release anything.
    assert (len(a), a.parts_held) == (2, 4)


def test_parts_added_as_persisted_are_not_returned_by_unpersisted() -> None:
    a = Assembler(expiry_s=600)
    a.add(part("a1", 1), 0, persisted=True)
    a.add(part("a2", 2), 0)
    assert [m.id for _, m in a.unpersisted()] == ["a2"]


def test_tombstones_are_exactly_the_persisted_keys() -> None:
    a = Assembler(expiry_s=600)
    p1, d1, p2, p3 = part("p1", 1), part("p1-again", 1), part("p2", 2), part("p3", 3)
    a.add(p1, 0)
    a.add(d1, 0)
    a.unpersisted()  # p1 and its duplicate now on the changelog
    a.add(p2, 0)  # not yet written
    whole = a.add(p3, 0)
    assert whole is not None
    assert sorted(whole.tombstones) == sorted([changelog_key(p1), changelog_key(d1)])
    assert changelog_key(p2) not in whole.tombstones
    assert changelog_key(p3) not in whole.tombstones


def test_tombstones_cover_persisted_duplicates_and_parts() -> None:
    a = Assembler(expiry_s=600)
    msgs = [part("p2", 2), part("p2-again", 2), part("p1", 1), part("p2-third", 2)]
    for m in msgs:
        a.add(m, 0)
        a.unpersisted()
    whole = a.add(part("p3", 3), 0)
    assert whole is not None
    assert Counter(whole.tombstones) == Counter(changelog_key(m) for m in msgs)


def test_changelog_key_is_per_part_id() -> None:
    p, d = part("p1", 1), part("p1-again", 1)
    assert changelog_key(p) == f"{p.concat_key}|p1".encode()
    assert changelog_key(p) != changelog_key(d)


# ------------------------------------------------------------------ expiry


def test_expire_releases_only_messages_older_than_expiry() -> None:
    a = Assembler(expiry_s=60)
    old1 = part("old1", 1, received_at=100.0)
    old3 = part("old3", 3, received_at=150.0)
    old1dup = part("old1-again", 1, received_at=155.0)
    young = part("young2", 2, ref=9, received_at=141.0)
    for m in (old3, old1, old1dup):
        a.add(m, 0)
    a.add(young, 1)
    a.unpersisted()
    late = part("old2-none", 1, ref=10, received_at=170.0)
    a.add(late, 2)  # held, never written

    assert a.expire(now=160.0) == []  # 100 is not older than 160 - 60
    gone = a.expire(now=160.5)
    assert len(gone) == 1
    (e,) = gone
    assert not e.complete
    assert e.key == old1.concat_key and e.partition == 0
    assert e.parts == (old1, old3)  # received segments, in seq order
    assert e.duplicates == (old1dup,)
    assert sorted(e.tombstones) == sorted(changelog_key(m) for m in (old1, old3, old1dup))
    assert (len(a), a.parts_held) == (2, 2)

    (y,) = a.expire(now=201.5)
    assert y.parts == (young,) and not y.complete and y.tombstones == (changelog_key(young),)
    (z,) = a.expire(now=1000.0)
    assert z.parts == (late,) and z.tombstones == ()  # nothing written, nothing to remove
    assert_empty(a)


def test_expiry_uses_the_earliest_received_at_not_the_first_added() -> None:
    a = Assembler(expiry_s=10)
    a.add(part("p2", 2, received_at=500.0), 0)
    a.add(part("p2-again", 2, received_at=100.0), 0)  # a retry stamped earlier elsewhere
    a.add(part("p1", 1, received_at=400.0), 0)
    (e,) = a.expire(now=111.0)
    assert ids(e.parts) == ["p1", "p2"] and ids(e.duplicates) == ["p2-again"]
    assert_empty(a)


def test_expire_everything_leaves_nothing_held() -> None:
    a = Assembler(expiry_s=1)
    for r in range(20):
        for s in (1, 3):
            a.add(part(f"{r}-{s}", s, ref=r, received_at=float(r)), r % 4)
    a.unpersisted()
    out = a.expire(now=100.0)
    assert len(out) == 20
    assert {e.key for e in out} == {part("x", 1, ref=r).concat_key for r in range(20)}
    assert all(not e.complete and seqs(e.parts) == [1, 3] for e in out)
    assert_empty(a)


# -------------------------------------------------------------- revocation


def test_forget_drops_only_the_revoked_partitions() -> None:
    a = Assembler(expiry_s=60)
    for p in range(4):
        a.add(part(f"{p}-1", 1, ref=p), p)
        a.add(part(f"{p}-1b", 1, ref=p), p)
    a.forget(iter([0, 2]))  # any iterable
    assert (len(a), a.parts_held) == (2, 4)
    assert sorted(p for p, _ in a.unpersisted()) == [1, 1, 3, 3]
    a.forget([])
    assert len(a) == 2
    # A forgotten message no longer completes here; a kept one does.
    assert a.add(part("0-2", 2, ref=0), 0) is None
    assert a.add(part("0-3", 3, ref=0), 0) is None
    assert (len(a), a.parts_held) == (3, 6)
    a.add(part("1-2", 2, ref=1), 1)
    whole = a.add(part("1-3", 3, ref=1), 1)
    assert whole is not None and ids(whole.parts) == ["1-1", "1-2", "1-3"]
    assert ids(whole.duplicates) == ["1-1b"]
    a.forget([0, 1, 2, 3])
    assert (len(a), a.parts_held) == (0, 0)


# ------------------------------------------------------------------ restore


def test_restore_latest_record_wins_and_tombstones_remove() -> None:
    a1, a2 = part("a1", 1), part("a2", 2)
    a2_new = part("a2", 2, body=b"newer record")
    b1, b2 = part("b1", 1, ref=9), part("b2", 2, ref=9)
    c1 = part("c1", 1, ref=10)
    records: list[Record] = [
        (2, changelog_key(a1), a1),
        (2, changelog_key(a2), a2),
        (5, changelog_key(b1), b1),
        (5, changelog_key(b2), b2),
        (5, changelog_key(b1), None),  # b routed: tombstones
        (5, changelog_key(b2), None),
        (2, changelog_key(a2), a2_new),  # rewritten: the later one counts
        (6, changelog_key(c1), None),  # tombstone then record again: present
        (6, changelog_key(c1), c1),
    ]
    a = Assembler(expiry_s=60)
    assert a.restore(records) == []
    assert (len(a), a.parts_held) == (2, 3)
    assert a.unpersisted() == []  # restored parts are on the changelog already
    whole = a.add(part("a3", 3), 2)
    assert whole is not None and whole.complete and whole.partition == 2
    assert whole.parts == (a1, a2_new, part("a3", 3))
    assert sorted(whole.tombstones) == sorted([changelog_key(a1), changelog_key(a2)])
    assert a.add(part("b3", 3, ref=9), 5) is None  # b's parts are gone
    assert (len(a), a.parts_held) == (2, 2)


def test_restore_only_tombstones_yields_nothing() -> None:
    p = part("p1", 1)
    a = Assembler(expiry_s=60)
    assert a.restore([(0, changelog_key(p), p), (0, changelog_key(p), None)]) == []
    assert_empty(a)


def test_restore_returns_a_message_already_complete() -> None:
    parts = [part("p3", 3), part("p1", 1), part("p1-again", 1), part("p2", 2)]
    a = Assembler(expiry_s=60)
    done = a.restore((7, changelog_key(m), m) for m in parts)
    assert len(done) == 1
    (whole,) = done
    assert whole.complete and whole.partition == 7
    assert ids(whole.parts) == ["p1", "p2", "p3"]
    assert ids(whole.duplicates) == ["p1-again"]
    assert sorted(whole.tombstones) == sorted(changelog_key(m) for m in parts)
    assert_empty(a)


def test_restore_keeps_state_from_records_written_by_another_router() -> None:
    """What one router writes (unpersisted + tombstones) rebuilds its state in another."""
    log: list[Record] = []

    def write(whole: Assembled | None, a: Assembler) -> None:
        log.extend((p, changelog_key(m), m) for p, m in a.unpersisted())
        if whole is not None:
            log.extend((whole.partition, k, None) for k in whole.tombstones)

    first = Assembler(expiry_s=60)
    for m in (part("a1", 1), part("b2", 2, ref=9), part("b1", 1, ref=9), part("a1-again", 1)):
        write(first.add(m, 1), first)
    write(first.add(part("b3", 3, ref=9), 1), first)  # b completes and is tombstoned
    assert (len(first), first.parts_held) == (1, 2)

    # Through the record codec, as the changelog stores them.
    second = Assembler(expiry_s=60)
    assert (
        second.restore(
            (p, k, decode(encode(m)) if isinstance(m, AcceptedMessage) else m) for p, k, m in log
        )
        == []
    )
    assert (len(second), second.parts_held) == (1, 2)
    second.add(part("a3", 3), 1)
    whole = second.add(part("a2", 2), 1)
    assert whole is not None
    assert ids(whole.parts) == ["a1", "a2", "a3"] and ids(whole.duplicates) == ["a1-again"]
    assert sorted(whole.tombstones) == sorted(
        [changelog_key(part("a1", 1)), changelog_key(part("a1-again", 1))]
    )


# ----------------------------------------------------------------- properties


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """(total, [(seq, copy number)]) in a shuffled order, with some duplicates."""
    total = draw(st.integers(2, 12))
    dups = draw(st.lists(st.integers(1, total), max_size=8))
    order = draw(st.permutations([*range(1, total + 1), *dups]))
    copies: Counter[int] = Counter()
    items = []
    for seq in order:  # copy 0 is the first to arrive
        items.append((seq, copies[seq]))
        copies[seq] += 1
    return total, items


@fast
@given(arrivals(), st.lists(st.booleans(), min_size=30, max_size=30))
def test_any_order_with_duplicates_completes_exactly_once(
    case: tuple[int, list[tuple[int, int]]], persist_after: list[bool]
) -> None:
    total, order = case
    a = Assembler(expiry_s=60)
    persisted: set[bytes] = set()
    done: list[tuple[int, Assembled]] = []
    msgs = [part(f"{seq}.{copy}", seq, total) for seq, copy in order]
    for i, m in enumerate(msgs):
        whole = a.add(m, 3)
        if whole is not None:
            done.append((i, whole))
        elif persist_after[i]:
            persisted |= {changelog_key(p) for _, p in a.unpersisted()}
    # The message completes when the first copy of its last missing segment arrives.
    completes_at = max(i for i, (_, copy) in enumerate(order) if copy == 0)
    assert done and done[0][0] == completes_at
    whole = done[0][1]
    assert whole.complete
    assert seqs(whole.parts) == list(range(1, total + 1))
    assert [m.id for m in whole.parts] == [f"{s}.0" for s in range(1, total + 1)]
    received = msgs[: completes_at + 1]
    assert list(whole.duplicates) == [m for m in received if not m.id.endswith(".0")]
    assert sorted(whole.tombstones) == sorted(persisted & {changelog_key(m) for m in received})
    # Copies that come after the release are a new message of their own: nothing
    # is lost or counted twice.
    released = [m.id for _, w in done for m in w.all_parts]
    assert len(released) == len(set(released))
    assert len(released) + a.parts_held == len(msgs)
    if completes_at == len(msgs) - 1:
        assert len(done) == 1
        assert_empty(a)


@fast
@given(arrivals(), st.integers(0, 40))
def test_crash_and_restore_at_any_point_changes_nothing(
    case: tuple[int, list[tuple[int, int]]], crash_after: int
) -> None:
    """Parts written after every add; a new router restores and gets the rest.

    Whatever the crash point, what leaves the assemblers is what one router
    that never crashed would have released.
    """
    total, order = case
    msgs = [part(f"{seq}.{copy}", seq, total) for seq, copy in order]

    def run(
        crash: int | None,
    ) -> list[tuple[list[str], list[str], bool, list[bytes], str | None]]:
        log: list[Record] = []
        done: list[Assembled] = []
        a = Assembler(expiry_s=60)
        for i, m in enumerate(msgs):
            if i == crash:
                a = Assembler(expiry_s=60)
                done += a.restore(log)
            whole = a.add(m, 0)
            log.extend((p, changelog_key(x), x) for p, x in a.unpersisted())
            log.extend((p, k, decode_changelog(p, k, v)) for p, k, v in a.markers())
            if whole is not None:
                done.append(whole)
                log.extend((whole.partition, k, None) for k in whole.tombstones)
        done += a.expire(float("inf"))
        return [
            (ids(w.parts), ids(w.duplicates), w.complete, sorted(w.tombstones), w.duplicate_of)
            for w in done
        ]

    reference = run(None)
    complete = [r for r in reference if r[2]]
    assert len(complete) >= 1
    assert complete[0][0] == [f"{s}.0" for s in range(1, total + 1)]
    assert run(crash_after) == reference


def test_routed_marker_survives_a_restart() -> None:
    """After a crash, late copies are still recognised when they expire."""
    a = Assembler(expiry_s=60)
    for s in (1, 2):
        a.add(part(f"p{s}", s, 2, received_at=1000.0), 4)
    writes = a.markers()
    assert [(p, k) for p, k, _ in writes] == [(4, b"acme|ACME|491701234567|8|7|2|routed")]
    b = Assembler(expiry_s=60)
    assert b.restore((p, k, decode_changelog(p, k, v)) for p, k, v in writes) == []
    assert b.add(part("p1-again", 1, 2, received_at=1005.0), 4) is None
    (late,) = b.expire(now=1005.0 + 61)
    assert late.duplicate_of == "p1"
