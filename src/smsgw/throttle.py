"""Per-customer submit rate limits: over the limit answer ESME_RTHROTTLED at once.

aiolimiter's leaky bucket decides; we only ever *check* capacity and take it
when present, never wait: a customer over its TPS gets 0x58 immediately
(invariant 4), not a stalled response window.
"""

from __future__ import annotations

import time

from aiolimiter import AsyncLimiter


class CustomerThrottle:
    def __init__(self) -> None:
        self._limiters: dict[str, tuple[float, AsyncLimiter]] = {}
        # A submit_multi larger than the bucket was let through on credit: the
        # customer's next submits are refused until this (monotonic) time.
        self._debt_until: dict[str, float] = {}

    def _limiter(self, customer: str, tps: float) -> AsyncLimiter:
        current = self._limiters.get(customer)
        if current is None or current[0] != tps:  # new customer or changed limit: replace
            # Below 1/s (a small limit shared by many nodes) a bucket of one that
            # refills every 1/tps seconds keeps the rate without refusing everything.
            limiter = AsyncLimiter(tps, 1) if tps >= 1 else AsyncLimiter(1, 1 / tps)
            self._limiters[customer] = (tps, limiter)
            return limiter
        return current[1]

    def try_acquire(self, customer: str, tps: float, amount: int = 1) -> bool:
        """Take ``amount`` (one per destination) if the bucket has room now.

        A submit_multi may name up to 254 destinations (SMPP 3.4 §4.5.1), more
        than a whole bucket: refusing it until the bucket holds them would
        answer ESME_RTHROTTLED forever. It is taken when the bucket is full
        and the excess spent from the next seconds of the rate: every submit
        is refused until then, so the customer's rate stays exact (invariant 4).
        """
        limiter = self._limiter(customer, tps)
        now = time.monotonic()
        if now < self._debt_until.get(customer, 0.0):
            return False
        self._debt_until.pop(customer, None)
        if amount > limiter.max_rate:
            if not self._take(limiter, int(limiter.max_rate)):
                return False
            per_second = limiter.max_rate / limiter.time_period
            self._debt_until[customer] = now + (amount - limiter.max_rate) / per_second
            return True
        return self._take(limiter, amount)

    @staticmethod
    def _take(limiter: AsyncLimiter, amount: int) -> bool:
        if not limiter.has_capacity(amount):
            return False
        # has_capacity() just said yes, so acquire() completes without ever
        # suspending: drive it to its end right here instead of awaiting it.
        coro = limiter.acquire(amount)
        try:
            coro.send(None)
        except StopIteration:
            return True
        coro.close()  # unreachable unless aiolimiter changes; refuse rather than wait
        return False
