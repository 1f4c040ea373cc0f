"""Which offset is safe to commit when work finishes out of order.

A worker reads records 10, 11, 12 of a partition; 12 and 10 finish, 11 is
still at the provider. Committing 13 would lose 11 on a crash, so the commit
point is the first gap: 11 (the next offset to read after a restart). The
idea is faust's ``_new_offset()``; this is the pure version of it.
"""

from __future__ import annotations


class PartitionOffsets:
    """Offsets read but not finished, for one partition (read in increasing order)."""

    __slots__ = ("_committed", "_highest", "_pending")

    def __init__(self) -> None:
        self._pending: set[int] = set()
        self._highest = -1
        self._committed = -1

    def read(self, offset: int) -> None:
        if self._highest < 0:
            self._committed = offset  # where we started: already the group's position
        self._pending.add(offset)
        self._highest = max(self._highest, offset)

    def done(self, offset: int) -> None:
        self._pending.discard(offset)

    def caught_up(self, position: int) -> None:
        """The consumer's position passed offsets that held no records (transaction markers).

        Only when nothing is unfinished: then everything below `position` was
        either done or never a record, and the commit point may move there.
        """
        if not self._pending and position > self._highest + 1:
            if self._highest < 0:
                self._committed = -1
            self._highest = position - 1

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def point(self) -> int | None:
        """The offset to commit now, moved or not (None: nothing read)."""
        if self._highest < 0:
            return None
        return min(self._pending) if self._pending else self._highest + 1

    def commit_point(self) -> int | None:
        """The offset to commit (the next to read after a restart), if it moved."""
        if self._highest < 0:
            return None
        point = min(self._pending) if self._pending else self._highest + 1
        if point <= self._committed:
            return None
        self._committed = point
        return point


class OffsetTracker:
    """PartitionOffsets per (topic, partition)."""

    def __init__(self) -> None:
        self.parts: dict[tuple[str, int], PartitionOffsets] = {}

    def read(self, topic: str, partition: int, offset: int) -> None:
        self.parts.setdefault((topic, partition), PartitionOffsets()).read(offset)

    def done(self, topic: str, partition: int, offset: int) -> None:
        part = self.parts.get((topic, partition))
        if part is not None:
            part.done(offset)

    def caught_up(self, topic: str, partition: int, position: int) -> None:
        self.parts.setdefault((topic, partition), PartitionOffsets()).caught_up(position)

    def commit_points(self) -> dict[tuple[str, int], int]:
        out = {}
        for key, part in self.parts.items():
            point = part.commit_point()
            if point is not None:
                out[key] = point
        return out

    def point(self, topic: str, partition: int) -> int | None:
        part = self.parts.get((topic, partition))
        return None if part is None else part.point()

    def started(self, topic: str, partition: int) -> bool:
        """Whether anything of the partition was read (or its position seen)."""
        part = self.parts.get((topic, partition))
        return part is not None and part._highest >= 0

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked: its unfinished work belongs to the next owner."""
        self.parts.pop((topic, partition), None)

    @property
    def in_flight(self) -> int:
        return sum(p.in_flight for p in self.parts.values())
