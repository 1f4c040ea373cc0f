"""Every counter the listener and the provider binds collect becomes a metric (issue 13:
``connections``, ``protocol_errors`` and ``refused`` were counted and never exported)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import smsgw.server
from smsgw.actors import metrics
from smsgw.pipeline.outbox import BindStats

SERVER = Path(smsgw.server.__file__).parent
# Bind counters of messages that end in a final state: exported once, through
# smsgw_messages_final_total{state, reason} (refused, expired, unencodable,
# unknown-outcome, withdrawn), not a second time under a name of their own.
FINAL_ALREADY = {"failed", "expired", "unsendable", "unknown_exhausted", "withdrawn"}


class Recording(metrics.MetricsExporter):
    def __init__(self, kind: str) -> None:
        super().__init__(kind, f"{kind}@test")
        self.got: list[tuple[str, float, dict[str, str]]] = []

    def _inc(self, metric: str, value: float, **tags: str) -> None:
        self.got.append((metric, value, tags))


def listener_events() -> set[str]:
    """Every event name the listener's code counts (``core.count("...")``)."""
    found: set[str] = set()
    for path in SERVER.glob("*.py"):
        found |= set(re.findall(r"\.count\(\s*\"(\w+)\"", path.read_text()))
    return found


def exported(kind: str, stats: dict[str, Any]) -> list[tuple[str, float, dict[str, str]]]:
    exporter = Recording(kind)
    exporter.export(stats)
    return [g for g in exporter.got if g[0] != "smsgw_dead_letters_total"]


def test_every_listener_counter_is_a_metric() -> None:
    events = listener_events()
    assert {"connections", "protocol_errors", "refused", "accepted"} <= events
    missing = []
    for event in sorted(events):
        got = exported("listener", {"counters": [(event, "cust", "0x00000003", 2)]})
        if not got:
            missing.append(event)
            continue
        ((metric, value, _tags),) = got
        assert metric in metrics._COUNTERS, metric
        assert value == 2
    assert not missing, f"counted but not exported: {missing}"


def test_protocol_errors_and_refused_requests_keep_customer_and_status() -> None:
    got = exported(
        "listener",
        {
            "counters": [
                ("protocol_errors", "acme", "0x00000003", 4),
                ("refused", "acme", "0x00000004", 1),
                ("connections", "", "", 7),
            ]
        },
    )
    assert got == [
        ("smsgw_protocol_errors_total", 4, {"customer": "acme", "status": "0x00000003"}),
        ("smsgw_requests_refused_total", 1, {"customer": "acme", "status": "0x00000004"}),
        ("smsgw_connections_total", 7, {"listener": "listener@test"}),
    ]


def test_every_bind_counter_is_a_metric() -> None:
    assert {f.name for f in dataclasses.fields(BindStats)} >= FINAL_ALREADY
    counters = [
        f.name
        for f in dataclasses.fields(BindStats)
        if f.type in ("int", int) and f.name not in FINAL_ALREADY
    ]
    assert {"connects", "retried", "withdrawn_too_late", "submitted"} <= set(counters)
    missing = []
    for name in counters:
        got = [g for g in exported("provider", {"provider": "p", "bind": {name: 3}}) if g[1]]
        if not got:
            missing.append(name)
            continue
        ((metric, _value, tags),) = got
        assert metric in metrics._COUNTERS and tags == {"provider": "p"}, metric
    assert not missing, f"counted but not exported: {missing}"
