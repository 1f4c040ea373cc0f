from __future__ import annotations

from smsgw.msgid import MAX_SEQ, IdGenerator, parse_id


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_ids_are_unique_decimal_and_short() -> None:
    gen = IdGenerator(instance=7)
    ids = [gen.next_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.isdigit() and len(i) <= 19 for i in ids)


def test_ids_of_two_instances_never_collide_in_the_same_millisecond() -> None:
    clock = FakeClock(1_800_000_000.0)
    a, b = IdGenerator(1, clock), IdGenerator(2, clock)
    assert {a.next_id() for _ in range(3000)}.isdisjoint({b.next_id() for _ in range(3000)})


def test_clock_stepping_back_does_not_repeat_ids() -> None:
    clock = FakeClock(1_800_000_000.0)
    gen = IdGenerator(3, clock)
    first = [gen.next_id() for _ in range(10)]
    clock.t -= 5.0  # NTP step backwards
    later = [gen.next_id() for _ in range(10)]
    assert not set(first) & set(later)
    assert int(later[0]) > int(first[-1])


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    gen = IdGenerator(5, FakeClock(1_800_000_000.0))
    ids = [gen.next_id() for _ in range(MAX_SEQ + 10)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=int)


def test_parse_id_roundtrips_instance() -> None:
    parsed = parse_id(IdGenerator(4095, FakeClock(1_800_000_000.123)).next_id())
    assert parsed is not None
    ms, instance, seq = parsed
    assert instance == 4095 and seq == 0 and ms == 1_800_000_000_123
    assert parse_id("abc") is None
