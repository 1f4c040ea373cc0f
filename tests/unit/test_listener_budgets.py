"""Pure parts of the listener's limits: the PDU rate of a bound customer, the log budget."""

from __future__ import annotations

from smsgw.log import LogBudget
from smsgw.server.connection import bound_pdu_rate


def test_bound_pdu_rate_follows_the_customer_tps_under_the_ceiling() -> None:
    assert bound_pdu_rate(2000, 10) == 130, "3 x TPS + 100"
    assert bound_pdu_rate(2000, 5000) == 2000, "never above the setting"
    assert bound_pdu_rate(0, 10) == 0, "0 switches the ceiling off"


def test_log_budget_writes_a_burst_per_period_and_counts_the_rest() -> None:
    b = LogBudget(burst=3, period_s=60.0)
    assert [b.allow(0.0) for _ in range(5)] == [True, True, True, False, False]
    assert b.suppressed == 2
    assert b.allow(59.0) is False
    assert b.allow(60.0) is True, "a new period"
    assert b.take_suppressed() == 3 and b.suppressed == 0 and b.suppressed_total == 3
