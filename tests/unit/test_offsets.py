from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smsgw.offsets import OffsetTracker, PartitionOffsets


def test_commit_stops_at_the_first_unfinished_offset() -> None:
    p = PartitionOffsets()
    for o in (10, 11, 12):
        p.read(o)
    p.done(10)
    p.done(12)
    assert p.commit_point() == 11
    assert p.commit_point() is None, "nothing new to commit"
    p.done(11)
    assert p.commit_point() == 13


@given(st.permutations(list(range(30))))
def test_never_commits_past_unfinished_work(order: list[int]) -> None:
    p = PartitionOffsets()
    for o in range(30):
        p.read(o)
    finished: set[int] = set()
    last = 0
    for o in order:
        p.done(o)
        finished.add(o)
        point = p.commit_point()
        if point is not None:
            assert point > last
            last = point
        assert all(x in finished for x in range(last)), "everything before the commit is done"
    assert last == 30


def test_tracker_per_partition_and_revocation() -> None:
    t = OffsetTracker()
    t.read("a", 0, 5)
    t.read("a", 1, 7)
    t.done("a", 1, 7)
    assert t.commit_points() == {("a", 1): 8}
    assert t.in_flight == 1
    t.forget("a", 0)
    assert t.in_flight == 0 and t.commit_points() == {}


def test_caught_up_moves_past_markers_only_when_nothing_is_unfinished() -> None:
    p = PartitionOffsets()
    p.read(10)
    p.read(11)
    p.done(10)
    p.caught_up(13)  # 11 still at work: the marker at 12 must wait
    assert p.commit_point() == 11
    p.done(11)
    p.caught_up(13)
    assert p.commit_point() == 13
    assert p.commit_point() is None
    p.caught_up(12)  # a stale position never moves it back
    assert p.commit_point() is None


def test_caught_up_without_records_commits_the_position() -> None:
    p = PartitionOffsets()
    p.caught_up(7)  # only markers since the group's offset
    assert p.commit_point() == 7
    p.read(8)
    p.done(8)
    assert p.commit_point() == 9
