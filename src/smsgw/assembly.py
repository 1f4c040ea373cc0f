"""Multipart assembly (sans-IO): parts in, whole or expired messages out.

Every part of one message carries the same concat key (customer, source,
destination, reference, total), so whichever bind or node accepted it, it
lands on the same ``submit`` partition and so with the same router. The
router holds the parts here until the set is complete. Held parts are also
written to the compacted ``multipart`` changelog in the same Kafka
transaction that commits their submit offsets (one record per part id, a
tombstone once the message is routed or expired), so a restarted router
rebuilds exactly this state with `restore` and nothing accepted is lost.

Parts may come in any order and more than once (a customer that lost a
``submit_sm_resp`` sends the part again and gets a second id): the first copy
of a segment is the one sent on, later copies ride along as duplicates whose
ids get the same receipt. A copy that comes after its message was routed
starts a new message: an 8-bit reference repeats every 256 messages, and a
new message's parts can look exactly like the last one's (same filler text),
so it cannot be told from a late copy when it arrives. If it then expires
and every part it holds equals a part of the message routed under that key
(kept for twice the expiry time), it is reported as a late duplicate (not
sent twice) rather than as an incomplete message. That memory is on the
changelog too, as a ``<key>|routed`` marker, tombstoned when it is forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from smsgw.message import AcceptedMessage, decode

_MARKER = b"|routed"


@dataclass(frozen=True)
class RoutedMarker:
    """What is remembered of a routed message: when, and each segment's id and octets."""

    partition: int
    at: float
    segments: dict[int, tuple[str, bytes]]

    def encode(self) -> bytes:
        d = {"at": self.at, "seg": {str(s): [i, b.hex()] for s, (i, b) in self.segments.items()}}
        return orjson.dumps(d)


ChangelogValue = AcceptedMessage | RoutedMarker | None


def decode_changelog(partition: int, key: bytes, value: bytes | None) -> ChangelogValue:
    """A changelog record's value: a held part, a routed marker, or None (tombstone)."""
    if value is None:
        return None
    if key.endswith(_MARKER):
        d = orjson.loads(value)
        segments = {int(s): (i, bytes.fromhex(h)) for s, (i, h) in d["seg"].items()}
        return RoutedMarker(partition, d["at"], segments)
    return decode(value)


def changelog_key(m: AcceptedMessage) -> bytes:
    """One changelog record per accepted part (duplicates included)."""
    return f"{m.concat_key}|{m.id}".encode()


@dataclass
class _Held:
    message: AcceptedMessage
    persisted: bool  # already on the changelog (so it needs a tombstone)


@dataclass
class _Pending:
    total: int
    partition: int
    parts: dict[int, _Held] = field(default_factory=dict)  # segment number -> first copy
    duplicates: list[_Held] = field(default_factory=list)

    def held(self) -> list[_Held]:
        return [*self.parts.values(), *self.duplicates]

    @property
    def first_at(self) -> float:
        return min(h.message.received_at for h in self.held())


@dataclass(frozen=True)
class Assembled:
    """A message leaving the assembler: complete (route it) or expired (fail it)."""

    key: str
    partition: int
    parts: tuple[AcceptedMessage, ...]  # complete: segments 1..total in order
    duplicates: tuple[AcceptedMessage, ...]
    tombstones: tuple[bytes, ...]  # changelog keys this message left behind
    complete: bool
    duplicate_of: str | None = None  # expired late copies: the id of the part routed before

    @property
    def all_parts(self) -> tuple[AcceptedMessage, ...]:
        return (*self.parts, *self.duplicates)

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.all_parts]


class Assembler:
    def __init__(self, expiry_s: float) -> None:
        self.expiry_s = expiry_s
        self._pending: dict[str, _Pending] = {}
        self._routed: dict[str, RoutedMarker] = {}  # recently routed messages, by key
        self._marker_writes: list[tuple[int, bytes, bytes | None]] = []

    def __len__(self) -> int:
        """Incomplete messages held."""
        return len(self._pending)

    @property
    def parts_held(self) -> int:
        return sum(len(p.held()) for p in self._pending.values())

    def add(
        self, m: AcceptedMessage, partition: int, *, persisted: bool = False
    ) -> Assembled | None:
        """Hold a part; the whole message once its last missing segment arrives."""
        key, c = m.concat_key, m.concat
        if key is None or c is None:
            raise ValueError(f"message {m.id} is not a part of a concatenated message")
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(c.total, partition)
        if c.seq in pending.parts:
            pending.duplicates.append(_Held(m, persisted))
        else:
            pending.parts[c.seq] = _Held(m, persisted)
        if len(pending.parts) < pending.total:
            return None
        return self._release(key, complete=True)

    def unpersisted(self) -> list[tuple[int, AcceptedMessage]]:
        """Held parts not yet on the changelog, marked as written: (partition, part)."""
        out = []
        for pending in self._pending.values():
            for h in pending.held():
                if not h.persisted:
                    h.persisted = True
                    out.append((pending.partition, h.message))
        return out

    def expire(self, now: float) -> list[Assembled]:
        """Messages whose first part arrived more than `expiry_s` ago, released."""
        cutoff = now - self.expiry_s
        for key in [k for k, r in self._routed.items() if r.at < cutoff - self.expiry_s]:
            marker = self._routed.pop(key)
            self._marker_writes.append((marker.partition, key.encode() + _MARKER, None))
        old = [k for k, p in self._pending.items() if p.first_at < cutoff]
        return [self._release(k, complete=False) for k in old]

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: their state now belongs to another router."""
        gone = set(partitions)
        self._pending = {k: p for k, p in self._pending.items() if p.partition not in gone}
        self._routed = {k: r for k, r in self._routed.items() if r.partition not in gone}

    def markers(self) -> list[tuple[int, bytes, bytes | None]]:
        """Routed markers to write or tombstone on the changelog: (partition, key, value)."""
        out, self._marker_writes = self._marker_writes, []
        return out

    def restore(self, records: Iterable[tuple[int, bytes, ChangelogValue]]) -> list[Assembled]:
        """Rebuild from changelog records (partition, key, decoded value or None).

        Compaction may or may not have run, so the latest record per key wins.
        Returns messages that turn out complete (possible only if a crash fell
        between writing the last part and routing it; they are routed now).
        """
        latest: dict[bytes, tuple[int, ChangelogValue]] = {}
        for partition, key, value in records:
            latest.pop(key, None)  # keep arrival order of the surviving records
            latest[key] = (partition, value)
        done = []
        for key, (partition, value) in latest.items():
            if isinstance(value, RoutedMarker):
                self._routed[key[: -len(_MARKER)].decode()] = value
            elif value is not None:
                whole = self.add(value, partition, persisted=True)
                if whole is not None:
                    done.append(whole)
        return done

    def _copy_of(self, key: str, pending: _Pending) -> str | None:
        """The routed id of the first held part if every held part is a copy of one."""
        routed = self._routed.get(key)
        if routed is None:
            return None
        for h in pending.held():
            c = h.message.concat
            seen = routed.segments.get(c.seq) if c else None
            if seen is None or seen[1] != _user_data(h.message):
                return None
        first = pending.held()[0].message.concat
        return routed.segments[first.seq][0] if first else None

    def _release(self, key: str, *, complete: bool) -> Assembled:
        pending = self._pending.pop(key)
        ordered = [pending.parts[s].message for s in sorted(pending.parts)]
        copy_of = None if complete else self._copy_of(key, pending)
        if complete:
            marker = RoutedMarker(
                pending.partition,
                max(m.received_at for m in ordered),
                {s: (h.message.id, _user_data(h.message)) for s, h in pending.parts.items()},
            )
            self._routed[key] = marker
            self._marker_writes.append((pending.partition, key.encode() + _MARKER, marker.encode()))
        return Assembled(
            key=key,
            partition=pending.partition,
            parts=tuple(ordered),
            duplicates=tuple(h.message for h in pending.duplicates),
            tombstones=tuple(changelog_key(h.message) for h in pending.held() if h.persisted),
            complete=complete,
            duplicate_of=copy_of,
        )


def _user_data(m: AcceptedMessage) -> bytes:
    return m.message_payload if m.message_payload is not None else m.short_message
