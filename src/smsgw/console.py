"""The operator console's logic: its login, its numbers and its pages (no Ray, no server).

The supervisor (``smsgw.actors.console``) serves these over HTTP on
``SMSGW_CONSOLE_LISTEN`` (loopback by default). Every page but the login form
needs the Ray cluster's token (``$SMSGW_HOME/ray_auth_token``, DESIGN invariant
10; docs/SECURITY.md), the one secret of the control plane, sent as
``Authorization: Bearer`` or once through the login form, which sets a cookie
derived from it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

COOKIE = "smsgw_console"
WINDOW_S = 60.0  # "the last minute" of every rate on the page


def session_cookie(token: str) -> str:
    """The login cookie: derived from the cluster token, never the token itself.

    A cookie read off a browser opens the console, not Ray (whose token runs code
    on every node); it changes when the cluster's token is rotated.
    """
    return hmac.new(token.encode(), b"smsgw console session", hashlib.sha256).hexdigest()


def authorized(token: str, authorization: str | None, cookie: str | None) -> bool:
    """The cluster token as a bearer token, or the login cookie, compared in constant time."""
    if not token:
        return False  # never serve without one
    offered = []
    if authorization and authorization.lower().startswith("bearer "):
        offered.append((authorization[7:].strip(), token))
    if cookie:
        offered.append((cookie, session_cookie(token)))
    return any(hmac.compare_digest(o.encode(), want.encode()) for o, want in offered)


# ---------------------------------------------------------------- counters


def counter_series(actors: dict[str, dict[str, Any]]) -> dict[tuple[str, ...], float]:
    """Every cumulative counter in the actors' stats: (actor, metric, labels…) -> value.

    Counters are per actor and restart from 0 with it; ``RateWindow`` turns
    them into increases, treating a drop as a restart.
    """
    out: dict[tuple[str, ...], float] = {}
    for name, a in actors.items():
        for event, customer, status, value in a.get("counters") or []:
            out[(name, str(event), str(customer), str(status))] = float(value)
        router = a.get("router") or {}
        for key in ("routed", "no_route"):
            if key in router:
                out[(name, key, "", "")] = float(router[key])
        bind = a.get("bind") or {}
        provider = str(a.get("provider", ""))
        for key in ("accepted", "submitted", "throttled", "receipts"):
            if key in bind:
                out[(name, f"provider_{key}", provider, "")] = float(bind[key])
        for status, n in (bind.get("errors") or {}).items():
            out[(name, "provider_error", provider, str(status))] = float(n)
    return out


class RateWindow:
    """Increases of cumulative counters over the last ``window_s`` seconds.

    The first sample is a baseline (the console may start long after the
    gateway). A series missing from a sample (its actor did not answer in
    time) keeps its last value; one appearing later counts from 0; one that
    drops was restarted and counts from 0 again.
    """

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, dict[tuple[str, ...], float]]] = deque()

    def add(self, at: float, series: dict[tuple[str, ...], float]) -> None:
        last = self.samples[-1][1] if self.samples else {}
        self.samples.append((at, {**last, **series}))
        # Keep one sample at or before the window's start: the reference.
        while len(self.samples) > 1 and self.samples[1][0] <= at - self.window_s:
            self.samples.popleft()

    def increases(self) -> dict[tuple[str, ...], float]:
        """Per series, what it grew by inside the window."""
        grown: dict[tuple[str, ...], float] = {}
        items = list(self.samples)
        for (_t0, before), (_t1, after) in itertools.pairwise(items):
            for key, value in after.items():
                prev = before.get(key, 0.0)
                delta = value - prev if value >= prev else value
                if delta:
                    grown[key] = grown.get(key, 0.0) + delta
        return grown


def summarize(
    status: dict[str, Any], increases: dict[tuple[str, ...], float], now: float | None = None
) -> dict[str, Any]:
    """The console's model: what an operator looks at first, from the supervisor's status."""
    now = time.time() if now is None else now
    actors: dict[str, dict[str, Any]] = status.get("actors") or {}

    def grown(metric: str, who: str | None = None, status_: str | None = None) -> int:
        return int(
            sum(
                v
                for (_a, m, w, s), v in ((k[:4], v) for k, v in increases.items())
                if m == metric and (who is None or w == who) and (status_ is None or s == status_)
            )
        )

    # Binds and traffic per customer.
    binds: dict[str, int] = {}
    for name, a in actors.items():
        if name.startswith("listener@"):
            for customer, n in (a.get("binds") or {}).items():
                binds[customer] = binds.get(customer, 0) + int(n)
    customers = sorted(
        set(binds)
        | {k[2] for k in increases if k[1] in ("accepted", "rejected", "throttled", "delivered")}
    )
    customer_rows = [
        {
            "customer": c,
            "binds": binds.get(c, 0),
            "accepted": grown("accepted", c),
            "rejected": grown("rejected", c),
            "throttled": grown("throttled", c),
            "delivered": grown("delivered", c),
        }
        for c in customers
        if c
    ]

    # Provider binds: up/down and why.
    providers: dict[str, dict[str, Any]] = {}
    for name, a in sorted(actors.items()):
        if not name.startswith("provider:"):
            continue
        pname = str(a.get("provider") or name.split(":", 1)[1].split("#")[0])
        bind = a.get("bind") or {}
        up = bool(bind.get("bound")) and a.get("state") == "ALIVE"
        why = ""
        if not up:
            why = (
                str(bind.get("last_error") or "")
                or str(a.get("error") or "")
                or (
                    f"actor {a.get('state')}"
                    if a.get("state") != "ALIVE"
                    else f"not bound (connection attempts: {bind.get('connects', 0)})"
                )
            )
        p = providers.setdefault(pname, {"provider": pname, "binds": [], "up": 0})
        p["binds"].append({"name": name, "up": up, "why": why, "node": str(a.get("node", ""))[:12]})
        p["up"] += 1 if up else 0
    for pname, p in providers.items():
        p["total"] = len(p["binds"])
        p["sent"] = grown("provider_accepted", pname)
        p["errors"] = grown("provider_error", pname)
        p["receipts"] = grown("provider_receipts", pname)

    errors: list[dict[str, Any]] = []
    for metric, kind in (("rejected", "customer"), ("provider_error", "provider")):
        rows = [
            {"where": f"{kind} {k[2]}", "status": k[3], "count": int(v)}
            for k, v in _merge(increases, metric).items()
        ]
        errors += sorted(rows, key=lambda e: (-int(e["count"]), str(e["where"])))

    nodes = []
    for n in status.get("nodes") or []:
        listener: tuple[str | None, dict[str, Any]] = next(
            (
                (name, a)
                for name, a in actors.items()
                if name.startswith("listener@") and str(a.get("node")) == n.get("id")
            ),
            (None, {}),
        )
        nodes.append(
            {
                "id": str(n.get("id", ""))[:12],
                "address": n.get("address"),
                "listener": listener[0],
                "smpp": listener[1].get("listen"),
                "state": listener[1].get("state", "no listener"),
            }
        )

    waiting = in_flight = held = 0
    failures: dict[str, dict[str, Any]] = {}
    for a in actors.values():
        waiting += int((a.get("deliverer") or {}).get("waiting", 0))
        in_flight += int(a.get("in_flight", 0) or 0)
        held += int((a.get("router") or {}).get("multipart_held", 0))
        for f in a.get("failures") or []:
            failures[str(f["id"])] = f
    recent = sorted(failures.values(), key=lambda f: -float(f.get("updated_at", 0)))[:20]

    return {
        "generated_at": now,
        "window_s": WINDOW_S,
        "nodes": nodes,
        "customers": customer_rows,
        "providers": sorted(providers.values(), key=lambda p: str(p["provider"])),
        "routed": grown("routed"),
        "no_route": grown("no_route"),
        "errors": errors,
        "queues": {
            "lag": dict(sorted((status.get("lag") or {}).items())),
            "waiting_for_receiver": waiting,
            "kafka_in_flight": in_flight,
            "multipart_parts_held": held,
        },
        "failures": recent,
        "actors": [
            {
                "name": name,
                "state": a.get("state"),
                "pid": a.get("pid"),
                "uptime_s": a.get("uptime_s"),
            }
            for name, a in sorted(actors.items())
        ],
    }


def _merge(increases: dict[tuple[str, ...], float], metric: str) -> dict[tuple[str, ...], float]:
    """Sum one metric over actors: (metric, who, status) -> increase."""
    out: dict[tuple[str, ...], float] = {}
    for key, v in increases.items():
        if key[1] == metric:
            k = (metric, key[2], key[3])
            out[k] = out.get(k, 0.0) + v
    return {(k[0], "", *k[1:]): v for k, v in out.items()}


# ---------------------------------------------------------------- pages

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.2em;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 .3em}h2{font-size:15px;margin:1.2em 0 .3em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left}th{background:#eee}.up{color:#080;font-weight:600}.down{color:#c00;
font-weight:600}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));
gap:0 2em}.muted{color:#777}form{display:inline}input{font:inherit}
"""


def login_page(failed: bool = False) -> str:
    note = '<p class="down">Wrong token.</p>' if failed else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>smsgw console</title>
<style>{_STYLE}</style></head><body><h1>smsgw console</h1>{note}
<form method="post" action="/login"><label>Ray cluster token
(<code>$SMSGW_HOME/ray_auth_token</code>)
<input type="password" name="token" id="token" autofocus></label>
<button type="submit" id="login">Log in</button></form></body></html>"""


def message_page(message_id: str, record: dict[str, Any] | None) -> str:
    mid = html.escape(message_id)
    if record is None:
        body = f"<p>No message <code>{mid}</code> is known to the gateway's state store.</p>"
    else:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td id='msg-{html.escape(str(k))}'>"
            f"{html.escape(_fmt(k, v))}</td></tr>"
            for k, v in record.items()
        )
        body = f"<table>{rows}</table>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>message {mid}</title>
<style>{_STYLE}</style></head><body><p><a href="/">&larr; console</a></p>
<h1>Message <code>{mid}</code></h1>{body}
<p class="muted">Its whole history: <code>smsgw message show {mid}</code></p></body></html>"""


def _fmt(key: str, value: Any) -> str:
    if key == "updated_at" and isinstance(value, int | float):
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))
    return str(value)


def console_page() -> str:
    """The page (console.html); its script polls ``/api/summary`` and fills the tables
    (no framework, no CDN: nothing outside the machine)."""
    return (Path(__file__).parent / "console.html").read_text()


def to_json(model: dict[str, Any]) -> str:
    return json.dumps(model, default=str)
