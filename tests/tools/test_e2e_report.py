"""The pure parts of the end-to-end benchmark: series, medians, recovery, steps, plots.

No sockets, no services: synthetic series in, numbers and files out.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import report
from benchmarks.e2e import summarise
from benchmarks.loadgen.config import LoadConfig, parse_steps
from benchmarks.loadgen.results import Recorder, bucket_percentiles, counts_list, percentiles
from benchmarks.plots import plot_run
from benchmarks.scenarios import SCENARIOS, parse_scenarios

# ------------------------------------------------------------ per-second series


def test_bucket_percentiles_groups_by_whole_second_of_submit() -> None:
    at = [0.1, 0.9, 1.5, 3.2, 3.3, 3.4, -0.5, 9.0]
    values = [10.0, 30.0, 5.0, 1.0, 2.0, 100.0, 7.0, 7.0]
    out = bucket_percentiles(at, values, 4)
    assert out[0.5] == [10.0, 5.0, None, 2.0]  # second 2 empty; -0.5 and 9.0 ignored
    assert out[0.99] == [30.0, 5.0, None, 100.0]


def test_counts_list_is_dense() -> None:
    assert counts_list({0: 3, 2: 5, 7: 1}, 4) == [3, 0, 5, 0]


def test_percentiles_include_p95() -> None:
    p = percentiles([float(i) for i in range(1, 101)])
    assert (p["p50"], p["p95"], p["p99"], p["max"], p["count"]) == (50, 95, 99, 100, 100)
    assert percentiles([])["p95"] == 0.0


def test_recorder_per_second_series() -> None:
    rec = Recorder(t0=100.0)
    # second 0: two accepted (one wants a receipt), one rejected
    rec.per_second_sent[0] += 3
    rec.on_resp(0, "a", sent_at=100.1, wants_receipt=True, now=100.11)
    rec.on_resp(0, "b", sent_at=100.2, wants_receipt=False, now=100.23)
    rec.on_resp(0x14, "", sent_at=100.3, wants_receipt=False, now=100.35)
    # second 1: one accepted whose receipt overtakes its resp
    rec.per_second_sent[1] += 1
    rec.early["c"] = 101.4  # receipt arrived before the resp named its id
    rec.on_resp(0, "c", sent_at=101.2, wants_receipt=True, now=101.5)
    # the receipt of "a" arrives in second 2
    rec.awaiting["a"] = 100.1
    ps = rec.per_second()
    assert ps["second"] == [0, 1]
    assert ps["sent"] == [3, 1]
    assert ps["accepted"] == [2, 1]
    assert ps["rejected"] == [1, 0]
    assert ps["receipts"] == [0, 1]  # by arrival second
    assert ps["resp_p50_ms"][0] == pytest.approx(30.0)
    assert ps["resp_p99_ms"][0] == pytest.approx(50.0)
    assert ps["receipt_p50_ms"] == [None, pytest.approx(200.0)]  # by submit second


def test_rate_steps() -> None:
    steps = parse_steps("250:10, 500:5")
    assert steps == ((10.0, 250.0), (5.0, 500.0))
    cfg = LoadConfig(rate_steps=steps)
    assert cfg.rate_limited and cfg.send_duration == 15.0 and cfg.message_limit is None
    assert [cfg.rate_at(t) for t in (0, 9.99, 10, 14.9, 99)] == [250, 250, 500, 500, 500]
    assert LoadConfig(rate_steps=steps, duration=12).send_duration == 12
    assert LoadConfig(rate=7).rate_at(3) == 7 and LoadConfig().message_limit == 1000
    with pytest.raises(ValueError):
        parse_steps("250")
    with pytest.raises(ValueError):
        LoadConfig(rate_steps=((0.0, 100.0),))


# ------------------------------------------------------------ medians and totals


def test_medians_of_runs_nested_missing_and_strings() -> None:
    runs = [
        {"accepted_per_s": 1000.0, "resp_ms": {"p99": 30.0}, "actor": "router#0", "x": None},
        {"accepted_per_s": 1200.0, "resp_ms": {"p99": 10.0}, "actor": "router#0", "x": 3},
        {"accepted_per_s": 1100.0, "resp_ms": {"p99": 20.0, "p50": 1.0}, "actor": "router#0"},
    ]
    m = report.medians(runs)
    assert m["accepted_per_s"] == 1100.0
    assert m["resp_ms"] == {"p99": 20.0, "p50": 1.0}
    assert m["actor"] == "router#0"
    assert m["x"] == 3.0


def test_medians_even_count_skip_lists_and_bools() -> None:
    runs = [
        {"a": 1, "series": [1, 2], "per_second": {"sent": [1]}, "ok": True},
        {"a": 4, "series": [3, 4], "per_second": {"sent": [2]}, "ok": False},
    ]
    m = report.medians(runs, skip=("per_second",))
    assert m == {"a": 2.5, "ok": None}


def test_totals_and_median_run() -> None:
    runs: list[dict[str, Any]] = [
        {"receipts_missing": 0, "accepted_per_s": 900.0},
        {"receipts_missing": 5, "accepted_per_s": 1500.0},
        {"receipts_missing": None, "accepted_per_s": 1000.0},
    ]
    assert report.totals(runs, ["receipts_missing"]) == {"receipts_missing": 5}
    assert report.median_run(runs) == 2
    assert report.median_run(runs[:2]) == 0  # lower median of two


def test_summarise_keeps_series_out_of_the_medians() -> None:
    runs = [
        {"accepted_per_s": 10.0, "receipts_missing": 0, "per_second": {"sent": [1]}, "events": []},
        {"accepted_per_s": 30.0, "receipts_missing": 2, "per_second": {"sent": [2]}, "events": []},
    ]
    s = summarise("steady", "d", runs)
    assert s["median"] == {"accepted_per_s": 20.0, "receipts_missing": 1.0}
    assert s["totals"]["receipts_missing"] == 2
    assert s["runs"] is runs


def test_run_figures_subtract_the_simulator_delay() -> None:
    load = {
        "offered_rate": 500.0,
        "accepted_per_s": 499.0,
        "submit_resp_latency_ms": {"p50": 3, "p95": 8, "p99": 12, "max": 40},
        "receipt_latency_ms": {"p50": 540.0, "p95": 580.0, "p99": 620.0, "max": 900.0},
        "receipts_missing": 0,
        "rejected_by_status": {"0x58": 2},
    }
    f = report.run_figures(load, receipt_delay_ms=500.0)
    assert f["receipt_minus_delay_ms"] == {"p50": 40.0, "p95": 80.0, "p99": 120.0}
    assert f["resp_ms"]["p99"] == 12 and f["rejected_by_status"] == {"0x58": 2}
    assert report.minus(None, 500.0) is None and report.minus(100.0, 500.0) == 0.0


# ------------------------------------------------------------ kill recovery


def test_recovery_time_after_a_dip() -> None:
    series = [500, 500, 500, 480, 0, 0, 0, 200, 460, 500, 500, 500, 0]
    # killed at 3.6 s; back at >= 450 for 3 s from second 8
    assert report.recovery_time(series, 3.6, 500) == pytest.approx(4.4)
    assert report.dip(series, 3.6) == 0
    assert report.dip(series, 9.0, end=12) == 500  # the partial last second does not count
    assert report.outage(series, 3.6, 500) == 3  # seconds 4, 5, 6 below 50/s
    assert report.outage([500] * 5, 1.0, 500) == 0


def test_recovery_time_no_dip_is_zero_and_never_is_none() -> None:
    flat = [500] * 10
    assert report.recovery_time(flat, 4.2, 500) == 0.0
    dead = [500, 500, 0, 0, 0, 0]
    assert report.recovery_time(dead, 1.5, 500) is None
    # the good seconds must come before the end of sending
    late = [500, 0, 0, 500, 500, 500, 500]
    assert report.recovery_time(late, 1.0, 500, end=5) is None
    assert report.recovery_time(late, 1.0, 500, end=6) == 2.0


# ------------------------------------------------------------ step load


def test_step_analysis_finds_saturation() -> None:
    steps = [(5.0, 250.0), (5.0, 500.0), (5.0, 1000.0)]
    accepted = [250] * 5 + [500] * 5 + [700] * 5
    receipts = [240] * 5 + [300] * 5 + [300] * 5
    out = report.step_analysis(
        {"sent": [250] * 5 + [500] * 5 + [1000] * 5, "accepted": accepted, "receipts": receipts},
        steps,
    )
    assert [s["accepted_per_s"] for s in out["steps"]] == [250.0, 500.0, 700.0]
    assert out["saturated_at"] == 1000.0 and out["max_following"] == 500.0
    assert out["receipts_saturated_at"] == 500.0 and out["receipts_max_following"] == 250.0


def test_step_analysis_skips_settling_seconds_and_all_follow() -> None:
    steps = [(4.0, 100.0), (4.0, 200.0)]
    accepted = [0, 0, 100, 100, 50, 60, 200, 200]  # the first 2 s of each step don't count
    out = report.step_analysis({"accepted": accepted, "receipts": accepted}, steps)
    assert out["saturated_at"] is None and out["max_following"] == 200.0


# ------------------------------------------------------------ throttled provider


def test_tps_compliance_and_realignment() -> None:
    sim = {
        "per_second_accepted": {"0": 50, "1": 50, "2": 49, "4": 10},
        "throttled": 0,
        "accepted": 159,
        "started_at_unix": 1000.0,
    }
    out = report.tps_compliance(sim, 50, t0_unix=1001.5)
    assert out["max_per_second"] == 50 and out["within_contract"]
    # sim second k starts 1.5 s before loadgen second k: it lands in loadgen second k-2
    assert out["per_second"] == [49, 0, 10]
    over = report.tps_compliance({"per_second_accepted": {"3": 51}}, 50)
    assert not over["within_contract"] and "per_second" not in over


# ------------------------------------------------------------ scenarios and plots


def test_parse_scenarios() -> None:
    assert parse_scenarios("all") == list(SCENARIOS) == parse_scenarios("")
    assert parse_scenarios("steady, kill") == ["steady", "kill"]
    with pytest.raises(ValueError, match="nope"):
        parse_scenarios("steady,nope")


def test_plot_written_from_a_small_series(tmp_path) -> None:
    per_second: dict[str, list[Any]] = {
        "second": [0, 1, 2, 3],
        "sent": [100, 100, 100, 0],
        "accepted": [100, 99, 100, 1],
        "rejected": [0, 1, 0, 0],
        "receipts": [20, 100, 100, 80],
        "resp_p50_ms": [2.0, 3.0, 2.5, None],
        "resp_p99_ms": [9.0, 12.0, 8.0, None],
        "receipt_p50_ms": [520.0, 530.0, 510.0, None],
        "receipt_p99_ms": [600.0, 640.0, 580.0, None],
    }
    path = plot_run(
        tmp_path / "sub" / "steady.png",
        per_second,
        title="synthetic",
        receipt_delay_ms=500.0,
        events=[(1.5, "SIGKILL router#0")],
        marks=[(3.0, "sending ends")],
        extra_lines={"slow provider": [50, 48, 50]},
        hlines={"contract 50/s": 50.0},
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_of_an_empty_series_still_writes(tmp_path) -> None:
    path = plot_run(tmp_path / "empty.png", {}, title="nothing")
    assert path.exists()
