"""The simulator's TPS limit: 0x58 above it, never more accepted per 1-s window."""

from benchmarks.loadgen import LoadConfig, run_load

LIMIT = 50


async def test_three_times_the_limit_is_throttled_per_second_window(make_sim):
    sim = await make_sim(tps_limit=LIMIT)
    result = await run_load(
        LoadConfig(port=sim.port, rate=3 * LIMIT, duration=2.2, window=50, registered_delivery=0)
    )
    assert result.offered_rate > 2.5 * LIMIT
    assert result.throttled > 0
    assert result.rejected_by_status.get("0x58") == result.throttled == sim.stats.throttled
    assert result.accepted == sim.stats.accepted
    assert max(sim.stats.per_second_accepted.values()) <= LIMIT
    assert sim.stats.tps_max == LIMIT  # the limit is reached, not just respected
    assert sum(sim.stats.per_second_submits.values()) == result.submits
