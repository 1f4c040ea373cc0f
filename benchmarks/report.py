"""The pure half of the end-to-end report: figures per run, medians, recovery, steps.

Everything here works on the JSON the load generator and the simulator write
(plain dicts and lists), so it is testable without a gateway.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

Json = dict[str, Any]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def minus(value: Any, delay_ms: float) -> float | None:
    """A receipt latency without the simulator's configured delay (None stays None)."""
    v = _num(value)
    return None if v is None else round(max(0.0, v - delay_ms), 3)


def run_figures(load: Mapping[str, Any], *, receipt_delay_ms: float) -> Json:
    """The headline figures of one loadgen run (its JSON summary)."""
    resp = load.get("submit_resp_latency_ms") or {}
    rcpt = load.get("receipt_latency_ms") or {}
    return {
        "offered_rate": load.get("offered_rate"),
        "accepted_per_s": load.get("accepted_per_s"),
        "submits": load.get("submits"),
        "accepted": load.get("accepted"),
        "rejected": load.get("rejected"),
        "throttled": load.get("throttled"),
        "timeouts": load.get("timeouts"),
        "rejected_by_status": dict(load.get("rejected_by_status") or {}),
        "resp_ms": {q: resp.get(q) for q in ("p50", "p95", "p99", "max")},
        "receipt_ms": {q: rcpt.get(q) for q in ("p50", "p95", "p99", "max")},
        "receipt_minus_delay_ms": {
            q: minus(rcpt.get(q), receipt_delay_ms) for q in ("p50", "p95", "p99")
        },
        "receipts_expected": load.get("receipts_expected"),
        "receipts_matched": load.get("receipts_matched"),
        "receipts_missing": load.get("receipts_missing"),
        "receipts_duplicate": load.get("receipts_duplicate"),
        "receipts_unmatched": load.get("receipts_unmatched"),
    }


def _median_of(values: Sequence[Any]) -> Any:
    """Median of the numbers, a merged median of dicts, or the common value."""
    dicts = [v for v in values if isinstance(v, Mapping)]
    if dicts:
        keys: list[str] = []
        for d in dicts:
            keys.extend(k for k in d if k not in keys)
        return {
            k: _median_of([d.get(k) for d in dicts])
            for k in keys
            if not any(isinstance(d.get(k), list | tuple) for d in dicts)
        }
    nums = [n for n in (_num(v) for v in values) if n is not None]
    if nums:
        return round(float(statistics.median(nums)), 3)
    present = [v for v in values if v is not None]
    if present and all(v == present[0] for v in present):
        return present[0]
    return None


def medians(runs: Sequence[Mapping[str, Any]], skip: Sequence[str] = ()) -> Json:
    """Per key, the median over runs; nested dicts key by key.

    A key missing (or None) in some runs is the median of the others; a key
    no run has a number for is None (strings equal in all runs are kept).
    Lists (e.g. events) and the keys in `skip` (e.g. per-second series) are
    left out.
    """
    keys: list[str] = []
    for r in runs:
        keys.extend(k for k in r if k not in keys and k not in skip)
    out: Json = {}
    for k in keys:
        values = [r.get(k) for r in runs]
        if any(isinstance(v, list | tuple) for v in values):
            continue
        out[k] = _median_of(values)
    return out


def totals(runs: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Json:
    """Sums over runs (for loss: one missing receipt in any run is a loss)."""
    return {k: sum(int(_num(r.get(k)) or 0) for r in runs) for k in keys}


def median_run(runs: Sequence[Mapping[str, Any]], key: str = "accepted_per_s") -> int:
    """Index of the run whose `key` is the (lower) median: the one to plot."""
    if not runs:
        raise ValueError("no runs")
    order = sorted(range(len(runs)), key=lambda i: _num(runs[i].get(key)) or 0.0)
    return order[(len(order) - 1) // 2]


def recovery_time(
    series: Sequence[float],
    at_s: float,
    target: float,
    *,
    share: float = 0.9,
    hold: int = 3,
    end: int | None = None,
) -> float | None:
    """Seconds from `at_s` until `series` is back at `share` x `target` for `hold` seconds.

    `series[i]` is the count in whole second i. The first second s ≥ floor(at_s)
    that starts `hold` good seconds in a row (only seconds before `end`, the
    end of sending, count) gives max(0, s - at_s); 0 means the rate never
    dipped below the threshold. None: it did not recover before `end`.
    """
    stop = len(series) if end is None else min(end, len(series))
    need = share * target
    first = max(0, math.floor(at_s))
    for s in range(first, stop):
        window = series[s : s + hold]
        if s + hold <= stop and all(v >= need for v in window):
            return round(max(0.0, s - at_s), 3)
    return None


def dip(
    series: Sequence[float], at_s: float, within: int = 15, end: int | None = None
) -> float | None:
    """Lowest per-second count in the `within` seconds from `at_s`, before `end` (None: none)."""
    first = max(0, math.floor(at_s))
    stop = first + within if end is None else min(first + within, end)
    window = series[first:stop]
    return min(window) if window else None


def outage(
    series: Sequence[float], at_s: float, target: float, *, share: float = 0.1, within: int = 30
) -> int:
    """Seconds in a row below `share` x `target`, the first such run within `within` s of `at_s`.

    0: the rate never fell that low. The length of a stall in whole seconds.
    """
    first = max(0, math.floor(at_s))
    need = share * target
    s = first
    while s < min(first + within, len(series)) and series[s] >= need:
        s += 1
    n = 0
    while s + n < len(series) and series[s + n] < need:
        n += 1
    return n


def step_analysis(
    per_second: Mapping[str, Sequence[Any]],
    steps: Sequence[tuple[float, float]],
    *,
    settle: int = 2,
    follow: float = 0.95,
) -> Json:
    """Does accepted (and receipts) per second follow each offered step?

    `steps` are (seconds, rate) in order, as the loadgen ran them. For each
    step: the mean of sent/accepted/receipts per second over the step's whole
    seconds, minus the first `settle` of them. `saturated_at` is the first step
    whose accepted mean is below `follow` x its rate; `max_following` the last
    step before it (None: even the first did not follow).
    """
    out_steps: list[Json] = []
    start = 0.0
    for secs, rate in steps:
        lo = math.ceil(start) + settle
        hi = math.floor(start + secs)
        if hi <= lo:
            lo = math.ceil(start)
        row: Json = {"rate": rate, "from_s": round(start, 3), "seconds": secs}
        for key in ("sent", "accepted", "receipts"):
            values = [float(v) for v in list(per_second.get(key) or [])[lo:hi]]
            row[f"{key}_per_s"] = round(statistics.fmean(values), 1) if values else None
        acc = row["accepted_per_s"]
        rcp = row["receipts_per_s"]
        row["accepted_follows"] = acc is not None and acc >= follow * rate
        row["receipts_follow"] = rcp is not None and rcp >= follow * rate
        out_steps.append(row)
        start += secs

    def first_failing(flag: str) -> tuple[float | None, float | None]:
        last_ok: float | None = None
        for row in out_steps:
            if not row[flag]:
                return row["rate"], last_ok
            last_ok = row["rate"]
        return None, last_ok

    sat, ok = first_failing("accepted_follows")
    rsat, rok = first_failing("receipts_follow")
    return {
        "steps": out_steps,
        "saturated_at": sat,
        "max_following": ok,
        "receipts_saturated_at": rsat,
        "receipts_max_following": rok,
    }


def tps_compliance(
    sim: Mapping[str, Any], contract: float, *, t0_unix: float | None = None
) -> Json:
    """The throttled provider as its simulator counted it, against the contract.

    `per_second_accepted` is keyed by whole seconds since the simulator
    started (`started_at_unix`); with `t0_unix` (the loadgen's second 0) the
    series is re-keyed to the loadgen's clock for plotting (approximately:
    both are whole-second buckets of different origins).
    """
    per_s = {int(k): int(v) for k, v in (sim.get("per_second_accepted") or {}).items()}
    tps_max = max(per_s.values(), default=0)
    out: Json = {
        "contract_tps": contract,
        "max_per_second": tps_max,
        "within_contract": tps_max <= contract,
        "sim_throttled": int(sim.get("throttled") or 0),
        "sim_accepted": int(sim.get("accepted") or 0),
    }
    started = _num(sim.get("started_at_unix"))
    if t0_unix is not None and started is not None and per_s:
        offset = started - t0_unix
        shifted: dict[int, int] = {}
        for k, v in per_s.items():
            s = math.floor(k + offset)  # injective: k are whole seconds
            if s >= 0:
                shifted[s] = shifted.get(s, 0) + v
        n = max(shifted, default=-1) + 1
        out["per_second"] = [shifted.get(s, 0) for s in range(n)]
    return out
