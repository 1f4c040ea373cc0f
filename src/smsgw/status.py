"""What `smsgw status` reports: totals that survive restarts, last-minute rates, health.

Pure: the supervisor feeds it each health pass (every actor's ``stats``) and
lag probe; it keeps, per actor, the last raw value of every counter, so a
counter that goes down (the actor restarted and began at 0) adds what it
had to a base instead of resetting the total. The totals are stored with
the report (PostgreSQL ``gateway_status``) and seed the next supervisor, so
they survive its restarts too.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

WINDOW_S = 60.0
RESTARTS_WINDOW_S = 300.0
RESTART_LOOP = 3  # restarts within RESTARTS_WINDOW_S: a stage restarting in a loop
LAG_GROWING_MIN = 100  # records; and higher in each of the last three probes


def counters_of(name: str, stats: dict[str, Any]) -> dict[str, float]:
    """The raw counters of one actor's stats, keyed ``scope|name|metric``."""
    out: dict[str, float] = {}
    if name.startswith("provider:"):
        provider = str(stats.get("provider") or name.split(":", 1)[1].split("#", 1)[0])
        b = stats.get("bind") or {}
        for metric in ("submitted", "accepted", "failed", "throttled", "receipts", "mo"):
            out[f"provider|{provider}|{metric}"] = float(b.get(metric, 0) or 0)
        for status, n in (b.get("errors") or {}).items():
            out[f"provider|{provider}|error {status}"] = float(n)
    elif name.startswith("listener@"):
        for row in stats.get("counters") or []:
            event, customer, status, n = row
            if not customer:
                continue
            metric = f"{event} {status}" if status and event != "delivered" else event
            key = f"customer|{customer}|{metric}"
            out[key] = out.get(key, 0.0) + float(n)
    return out


@dataclass
class StatusBook:
    """Monotonic totals, rates over the last minute, and what is unhealthy."""

    base: dict[str, float] = field(default_factory=dict)
    last_raw: dict[str, dict[str, float]] = field(default_factory=dict)  # actor -> raw
    last_pid: dict[str, Any] = field(default_factory=dict)
    restarts: dict[str, deque[float]] = field(default_factory=dict)
    history: deque[tuple[float, dict[str, float]]] = field(default_factory=deque)
    lag_history: deque[dict[str, int]] = field(default_factory=lambda: deque(maxlen=4))

    @classmethod
    def resumed(cls, totals: dict[str, float]) -> StatusBook:
        """A book that continues the totals a previous supervisor stored."""
        return cls(base=dict(totals))

    def totals(self) -> dict[str, float]:
        out = dict(self.base)
        for raw in self.last_raw.values():
            for k, v in raw.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def observe(self, actors: dict[str, dict[str, Any]], now: float | None = None) -> None:
        now = time.time() if now is None else now
        for name, stats in actors.items():
            if stats.get("state") != "ALIVE":
                continue
            pid = stats.get("pid")
            if name in self.last_pid and pid != self.last_pid[name]:
                self.restarts.setdefault(name, deque()).append(now)
            self.last_pid[name] = pid
            raw = counters_of(name, stats)
            old = self.last_raw.get(name, {})
            if any(raw.get(k, 0.0) < v for k, v in old.items()):
                # It restarted (its counters began again): keep what it had counted.
                for k, v in old.items():
                    self.base[k] = self.base.get(k, 0.0) + v
            self.last_raw[name] = raw
        for q in self.restarts.values():
            while q and q[0] < now - RESTARTS_WINDOW_S:
                q.popleft()
        self.history.append((now, self.totals()))
        while len(self.history) > 2 and self.history[1][0] <= now - WINDOW_S:
            self.history.popleft()

    def observe_lag(self, lag: dict[str, int]) -> None:
        self.lag_history.append(dict(lag))

    def rates(self) -> dict[str, float]:
        """Per second over the last minute (or as much of it as was seen)."""
        if len(self.history) < 2:
            return {}
        (t0, a), (t1, b) = self.history[0], self.history[-1]
        span = max(t1 - t0, 1e-9)
        return {k: round((v - a.get(k, 0.0)) / span, 2) for k, v in b.items()}

    def growing_lag(self) -> list[str]:
        if len(self.lag_history) < 3:
            return []
        recent = list(self.lag_history)[-3:]
        return sorted(
            t
            for t, n in recent[-1].items()
            if n >= LAG_GROWING_MIN and all(recent[i].get(t, 0) < recent[i + 1].get(t, 0)
                                            for i in range(2))
        )  # fmt: skip

    def report(self, actors: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Per provider and customer: totals, rates, errors by status, binds and why down;
        and the list of problems (empty: healthy)."""
        totals, rates = self.totals(), self.rates()
        scopes: dict[str, dict[str, dict[str, Any]]] = {"provider": {}, "customer": {}}
        for key, total in sorted(totals.items()):
            scope, name, metric = key.split("|", 2)
            entry = scopes[scope].setdefault(name, {"totals": {}, "per_s": {}, "errors": {}})
            if metric.startswith("error "):
                entry["errors"][metric[6:]] = int(total)
                continue
            entry["totals"][metric] = int(total)
            entry["per_s"][metric] = rates.get(key, 0.0)
        problems: list[str] = []
        for name, stats in sorted(actors.items()):
            if not name.startswith("provider:"):
                continue
            provider = str(stats.get("provider") or name.split(":", 1)[1].split("#", 1)[0])
            entry = scopes["provider"].setdefault(
                provider, {"totals": {}, "per_s": {}, "errors": {}}
            )
            b = stats.get("bind") or {}
            up = stats.get("state") == "ALIVE" and bool(b.get("bound"))
            entry["binds_up"] = entry.get("binds_up", 0) + int(up)
            entry["binds"] = entry.get("binds", 0) + 1
            if not up:
                why = b.get("last_error") or stats.get("error") or stats.get("state") or "unbound"
                entry["last_bind_error"] = str(why)
        for provider, entry in sorted(scopes["provider"].items()):
            if entry.get("binds") and not entry.get("binds_up"):
                why = entry.get("last_bind_error", "")
                problems.append(f"provider {provider} down" + (f": {why}" if why else ""))
        for name, q in sorted(self.restarts.items()):
            if len(q) >= RESTART_LOOP:
                problems.append(f"{name} restarted {len(q)} times in {RESTARTS_WINDOW_S:.0f} s")
        for name, stats in sorted(actors.items()):
            if stats.get("state") not in (None, "ALIVE"):
                problems.append(f"{name} {str(stats.get('state')).lower()}")
        for topic in self.growing_lag():
            problems.append(f"lag on {topic} growing ({self.lag_history[-1][topic]} records)")
        return {**scopes, "problems": problems, "totals": totals}


# Per-actor figures that move with the clock alone, not with anything the report says.
VOLATILE = frozenset({"uptime_s", "updated_at"})


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [_steady(v) for v in value]
    return value


def digest(*parts: Any) -> bytes:
    """A fingerprint of what a status report shows, blind to the clock alone moving
    (uptimes, the time of the round): the supervisor writes the report again only when
    it changed, or as a heartbeat (issue 13)."""
    raw = orjson.dumps(_steady(list(parts)), option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(raw, digest_size=16).digest()
