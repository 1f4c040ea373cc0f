from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from smsgw.throttle import CustomerThrottle


def _loop_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Stop the running loop's clock (aiolimiter reads ``loop.time()``); the returned
    function moves it on. A real sleep let a loaded machine leak more than planned."""
    loop = asyncio.get_running_loop()
    now = [loop.time()]
    monkeypatch.setattr(loop, "time", lambda: now[0])

    def advance(seconds: float) -> None:
        now[0] += seconds

    return advance


async def test_bucket_allows_the_rate_then_refuses_without_waiting() -> None:
    t = CustomerThrottle()
    got = [t.try_acquire("c", 10) for _ in range(25)]
    assert sum(got) == 10 and got[:10] == [True] * 10 and not any(got[10:])


async def test_capacity_returns_as_the_bucket_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    advance = _loop_clock(monkeypatch)
    t = CustomerThrottle()
    for _ in range(20):
        t.try_acquire("c", 20)
    assert not t.try_acquire("c", 20)
    # 20/s leaks 6 in 0.3 s; a hair more, as the clock is a float far from 0: 0.3 s after
    # loop.time() can come out as 0.29999 s, which leaked 5 (make unit, session 9).
    advance(0.31)
    assert sum(t.try_acquire("c", 20) for _ in range(10)) == 6


async def test_customers_are_limited_separately_and_limit_changes_apply() -> None:
    t = CustomerThrottle()
    assert sum(t.try_acquire("a", 2) for _ in range(5)) == 2
    assert sum(t.try_acquire("b", 3) for _ in range(5)) == 3
    assert t.try_acquire("a", 100), "a raised limit replaces the old bucket"


async def test_multi_destination_takes_one_unit_per_destination() -> None:
    t = CustomerThrottle()
    assert t.try_acquire("m", 10, amount=8)
    assert not t.try_acquire("m", 10, amount=3)


async def test_more_destinations_than_the_rate_spend_the_next_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: ESME_RTHROTTLED forever (it could never fit the bucket)."""
    advance = _loop_clock(monkeypatch)
    t = CustomerThrottle()
    assert t.try_acquire("x", 5, amount=12), "taken when the whole bucket is free"
    assert not t.try_acquire("x", 5), "the 7 over the bucket are paid for: 1.4 s refused"
    t._debt_until["x"] -= 1.5  # the debt paid (the clock moved on)
    advance(0.25)  # the bucket itself leaks 1 in 0.2 s at 5/s
    assert t.try_acquire("x", 5)
    t2 = CustomerThrottle()
    assert t2.try_acquire("y", 5)
    assert not t2.try_acquire("y", 5, amount=12), "only from a full bucket"


async def test_limits_below_one_per_second_still_pass_traffic() -> None:
    t = CustomerThrottle()
    assert t.try_acquire("tiny", 0.5), "the first submit of a 0.5/s share goes through"
    assert not t.try_acquire("tiny", 0.5)
