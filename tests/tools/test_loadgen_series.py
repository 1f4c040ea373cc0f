"""The load generator's per-second series and step load, straight into the simulator."""

from benchmarks.loadgen import LoadConfig, run_load


async def test_rate_steps_and_per_second_series(make_sim):
    sim = await make_sim(receipt_delay=0.05)
    result = await run_load(
        LoadConfig(
            port=sim.port,
            binds=2,
            window=20,
            rate_steps=((1.0, 100.0), (1.0, 300.0)),
            receipt_timeout=5.0,
            seed=1,
        )
    )
    ps = result.per_second
    assert 1.9 <= result.send_seconds <= 2.5
    assert sum(ps["sent"]) == result.submits
    assert sum(ps["accepted"]) == result.accepted == result.submits
    assert sum(ps["receipts"]) == result.receipts_matched == result.accepted
    assert 60 <= ps["sent"][0] <= 130 and ps["sent"][1] >= 2 * ps["sent"][0]
    assert len(ps["resp_p99_ms"]) == len(ps["second"]) >= 2
    assert ps["receipt_p50_ms"][0] >= 50
    assert result.t0_unix > 1.6e9
    assert result.submit_resp_latency_ms["p95"] > 0
