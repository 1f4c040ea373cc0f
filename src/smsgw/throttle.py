"""Per-customer submit rate limits: over the limit answer ESME_RTHROTTLED at once.

aiolimiter's leaky bucket decides; we only ever *check* capacity and take it
when present, never wait: a customer over its TPS gets 0x58 immediately
(invariant 4), not a stalled response window.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter


class CustomerThrottle:
    def __init__(self) -> None:
        self._limiters: dict[str, tuple[float, AsyncLimiter]] = {}

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
        """Take ``amount`` (one per destination) if the bucket has room now."""
        limiter = self._limiter(customer, tps)
        if amount > limiter.max_rate:
            return False
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
