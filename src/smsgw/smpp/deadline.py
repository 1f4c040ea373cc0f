"""One asyncio timer that follows a sans-IO session's next deadline.

The session computes every deadline (enquire_link interval, response timeout
per outstanding request, bind timeout, inactivity; SMPP 3.4 §2.11, §4.11),
but only the IO shell has a clock that fires. A timer armed once and never
moved misses every deadline that comes *earlier* than the armed one: the bind's
response timeout, the first enquire_link after the bind, a submit's response
timeout. So the shell calls `follow(session.next_deadline())` after every
feed/send/tick; an earlier deadline re-arms, a later one lets the armed timer
fire early (the tick is then a no-op and the callback follows again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DeadlineTimer:
    """`callback` runs at (or just after) the earliest deadline followed so far."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def armed_at(self) -> float | None:
        return self._handle.when() if self._handle is not None else None

    def follow(self, deadline: float | None) -> None:
        """Make sure the timer fires no later than `deadline` (None: nothing to wait for)."""
        if deadline is None:
            self.cancel()
            return
        if self._handle is not None and self._handle.when() <= deadline:
            return
        self.cancel()
        self._handle = self._loop.call_at(deadline, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()
