"""Gateway message ids: unique across nodes and restarts, decimal, ≤ 19 digits.

Decimal because customers' SMPP clients are picky: Kannel with ``msg-id-type``
parses any id with a non-digit as hex, and UUID-style ids break it. The id is
a 63-bit snowflake: milliseconds since 2026-01-01 (41 bits, ~69 years), an
instance number leased from PostgreSQL at start (12 bits, so two live
instances never share one unless 4096 starts happened in between), and a
per-millisecond counter (10 bits). A clock that steps back is ridden out by
never letting the time component decrease.
"""

from __future__ import annotations

import threading
import time

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
INSTANCE_BITS = 12
SEQ_BITS = 10
MAX_INSTANCE = (1 << INSTANCE_BITS) - 1
MAX_SEQ = (1 << SEQ_BITS) - 1


class IdGenerator:
    def __init__(self, instance: int, clock: object = time.time) -> None:
        self.instance = instance & MAX_INSTANCE
        self._clock = clock
        self._last_ms = 0
        self._seq = 0
        self._lock = threading.Lock()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000) - EPOCH_MS  # type: ignore[operator]

    def next_id(self) -> str:
        with self._lock:
            ms = max(self._now_ms(), self._last_ms)
            if ms == self._last_ms:
                self._seq += 1
                if self._seq > MAX_SEQ:  # 1024 ids in this ms: borrow the next one
                    ms += 1
                    self._seq = 0
            else:
                self._seq = 0
            self._last_ms = ms
            value = (ms << (INSTANCE_BITS + SEQ_BITS)) | (self.instance << SEQ_BITS) | self._seq
        return str(value)


def parse_id(message_id: str) -> tuple[int, int, int] | None:
    """(epoch ms, instance, seq) of one of our ids, or None if it is not one."""
    if not message_id.isdigit() or len(message_id) > 19:
        return None
    value = int(message_id)
    seq = value & MAX_SEQ
    instance = (value >> SEQ_BITS) & MAX_INSTANCE
    ms = value >> (INSTANCE_BITS + SEQ_BITS)
    return ms + EPOCH_MS, instance, seq
