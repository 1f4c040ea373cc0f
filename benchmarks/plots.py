"""PNG plots of one run's per-second series (matplotlib, Agg: no display needed).

One figure, two panels sharing the time axis (seconds since the first submit):

- top, throughput: submits offered (sent), accepted (status 0 answered) and
  receipts arrived, per second; optional extra lines (e.g. a throttled
  provider as its simulator counted it) and horizontal lines (its contract);
- bottom, latency on a log scale: submit_sm_resp p50/p99 and receipt p50/p99
  minus the simulator's receipt delay, per second of submit.

Solid vertical lines mark events (the kill), dotted ones marks (step
changes, the end of sending).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def _xy(values: Sequence[Any], offset_ms: float = 0.0) -> tuple[list[int], list[float]]:
    """Seconds and values, without the seconds that have no value; log-safe (> 0)."""
    xs: list[int] = []
    ys: list[float] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        xs.append(i)
        ys.append(max(float(v) - offset_ms, 0.01))
    return xs, ys


def plot_run(
    path: Path,
    per_second: Mapping[str, Sequence[Any]],
    *,
    title: str,
    receipt_delay_ms: float = 0.0,
    events: Sequence[tuple[float, str]] = (),
    marks: Sequence[tuple[float, str]] = (),
    extra_lines: Mapping[str, Sequence[float]] | None = None,
    hlines: Mapping[str, float] | None = None,
) -> Path:
    """Write the two-panel PNG of one run to `path` (parents created) and return it."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [1, 1]}
    )
    try:
        for key, label, style in (
            ("sent", "offered (submits sent)/s", {"color": "0.55", "linestyle": "--"}),
            ("accepted", "accepted/s", {"color": "tab:blue"}),
            ("receipts", "receipts/s", {"color": "tab:green"}),
            ("rejected", "rejected/s", {"color": "tab:red", "linewidth": 0.8}),
        ):
            values = list(per_second.get(key) or [])
            if key == "rejected" and not any(values):
                continue
            if values:
                top.plot(range(len(values)), values, label=label, **style)
        for label, extra in (extra_lines or {}).items():
            top.plot(range(len(extra)), list(extra), label=label, color="tab:purple")
        for label, y in (hlines or {}).items():
            top.axhline(y, color="tab:purple", linestyle=":", label=label)
        top.set_ylabel("messages per second")
        top.set_title(title)
        top.grid(True, alpha=0.3)

        for key, label, offset, style in (
            ("resp_p50_ms", "submit_sm_resp p50", 0.0, {"color": "tab:blue"}),
            ("resp_p99_ms", "submit_sm_resp p99", 0.0, {"color": "tab:blue", "linestyle": "--"}),
            ("receipt_p50_ms", "receipt p50 - sim delay", receipt_delay_ms, {"color": "tab:green"}),
            (
                "receipt_p99_ms",
                "receipt p99 - sim delay",
                receipt_delay_ms,
                {"color": "tab:green", "linestyle": "--"},
            ),
        ):
            xs, ys = _xy(list(per_second.get(key) or []), offset)
            if xs:
                bottom.plot(xs, ys, label=label, **style)
        bottom.set_yscale("log")
        bottom.set_ylabel("latency, ms (log; by second of submit)")
        bottom.set_xlabel("seconds since the first submit")
        bottom.grid(True, which="both", alpha=0.3)

        for (x, label), style in [
            *((e, {"color": "black", "linewidth": 1.2}) for e in events),
            *((m, {"color": "0.4", "linewidth": 0.8, "linestyle": ":"}) for m in marks),
        ]:
            for ax in (top, bottom):
                ax.axvline(x, **style)  # type: ignore[arg-type]
            top.annotate(
                label,
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
            )
        for ax in (top, bottom):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize=8, framealpha=0.8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def plot_cpu(path: Path, runs: Sequence[Mapping[str, Any]], *, title: str) -> Path:
    """Stacked bars: CPU ms per message by role, one bar per run (the `cpu` entries).

    The dashed line is each run's gateway total (everything but the load tools
    and the benchmark's driver), the figure the issue's targets are about.
    """
    roles: list[str] = []
    for r in runs:
        roles.extend(k for k in (r.get("ms_per_msg") or {}) if k not in roles)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    try:
        xs = list(range(1, len(runs) + 1))
        bottoms = [0.0] * len(runs)
        cmap = plt.get_cmap("tab20")
        for j, role in enumerate(roles):
            ys = [float((r.get("ms_per_msg") or {}).get(role) or 0.0) for r in runs]
            ax.bar(xs, ys, bottom=bottoms, label=role, color=cmap(j % 20))
            bottoms = [b + y for b, y in zip(bottoms, ys, strict=True)]
        totals = [float(r.get("gateway_ms_per_msg") or 0.0) for r in runs]
        ax.plot(xs, totals, "k_", markersize=40, label="gateway total (no load tools)")
        for x, t in zip(xs, totals, strict=True):
            ax.annotate(f"{t:.2f}", (x, t), xytext=(22, -3), textcoords="offset points")
        ax.set_xticks(xs, [f"run {x}" for x in xs])
        ax.set_ylabel("CPU ms per accepted message (user + system)")
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
