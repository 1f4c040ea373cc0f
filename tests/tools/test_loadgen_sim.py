"""The load generator straight into the simulator: counts, receipts, latencies."""

from collections import defaultdict

from benchmarks.loadgen import LoadConfig, run_load
from benchmarks.loadgen.messages import GSM_LONG, UCS2_LONG


def _config(sim, **kw) -> LoadConfig:
    return LoadConfig(**{"port": sim.port, "receipt_timeout": 5.0, "seed": 1, **kw})


async def test_all_accepted_every_receipt_matched_once(make_sim):
    sim = await make_sim(receipt_delay=0.05)
    result = await run_load(
        _config(
            sim,
            count=400,
            binds=2,
            window=20,
            mix={"gsm": 0.7, "ucs2": 0.3},
            multipart_share=0.2,
        )
    )
    assert result.messages == 400
    assert result.submits > 400  # multipart messages are several submits
    assert result.accepted == result.submits == sim.stats.accepted == len(sim.received)
    assert result.rejected == result.throttled == result.timeouts == 0
    # only part 1 of a multipart message asks for a receipt
    assert result.receipts_expected == result.receipts_matched == 400
    assert result.receipts_missing == result.receipts_duplicate == result.receipts_unmatched == 0
    assert sim.stats.receipts_acked == 400
    assert result.submit_resp_latency_ms["count"] == result.submits
    assert result.receipt_latency_ms["count"] == 400
    assert 50 <= result.receipt_latency_ms["p50"] < 1000
    assert 0 < result.submit_resp_latency_ms["p50"] <= result.submit_resp_latency_ms["max"]


async def test_multipart_and_ucs2_reach_the_smsc_intact(make_sim):
    sim = await make_sim(receipt_delay=0)
    await run_load(_config(sim, count=60, mix={"gsm": 0.5, "ucs2": 0.5}, multipart_share=0.5))
    codings = {r.data_coding for r in sim.received}
    assert codings == {0, 8}
    messages: dict[tuple[str, int, int], dict[int, bytes]] = defaultdict(dict)
    for r in sim.received:
        if r.esm_class & 0x40:
            udh, body = r.short_message[:6], r.short_message[6:]
            assert udh[:3] == b"\x05\x00\x03"
            assert 1 <= udh[5] <= udh[4]
            messages[r.dest, udh[3], r.data_coding][udh[5]] = body
    assert messages
    texts = set()
    for (_dest, _ref, coding), parts in messages.items():
        joined = b"".join(parts[i] for i in sorted(parts))
        texts.add(joined.decode("utf-16-be" if coding == 8 else "gsm03.38"))
    assert texts == {GSM_LONG, UCS2_LONG}


async def test_tx_rx_binds_receive_receipts_on_the_receivers(make_sim):
    sim = await make_sim(receipt_delay=0)
    result = await run_load(_config(sim, count=100, binds=2, bind_mode="tx+rx"))
    assert sim.stats.binds == 4
    assert result.receipts_matched == 100 and result.receipts_missing == 0
    assert {r.bind_mode.name for r in sim.received if r.bind_mode} == {"TX"}


async def test_hex_decimal_quirk_shows_as_unmatched_receipts(make_sim):
    sim = await make_sim(receipt_delay=0, id_format="hex", receipt_id_format="decimal")
    result = await run_load(_config(sim, count=20, receipt_timeout=0.5))
    assert result.receipts == 20
    assert result.receipts_matched == 0
    assert result.receipts_missing == result.receipts_unmatched == 20


async def test_rejections_are_counted_by_status(make_sim):
    sim = await make_sim(receipt_delay=0)
    sim.fail_next(3, 0x14)
    result = await run_load(_config(sim, count=10, window=1))
    assert result.rejected == 3 and result.rejected_by_status == {"0x14": 3}
    assert result.accepted == 7 and result.receipts_matched == 7


async def test_a_timed_run_ends_after_the_message_in_progress(make_sim):
    """Stopping between two parts would leave an incomplete message (a receipt never due)."""
    sim = await make_sim(receipt_delay=0)
    result = await run_load(
        _config(sim, duration=0.7, rate=333.0, multipart_share=1.0, binds=1, window=5)
    )
    assert result.receipts_missing == 0
    parts: dict[tuple[str, int], set[int]] = defaultdict(set)
    totals: dict[tuple[str, int], int] = {}
    for r in sim.received:
        udh = r.short_message[:6]
        parts[r.dest, udh[3]].add(udh[5])
        totals[r.dest, udh[3]] = udh[4]
    assert parts and all(seqs == set(range(1, totals[k] + 1)) for k, seqs in parts.items())
