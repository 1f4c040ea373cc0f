"""The console's pure parts: its login, its last-minute counts, its model of the status."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsgw.console import (
    RateWindow,
    authorized,
    console_page,
    counter_series,
    message_page,
    session_cookie,
    summarize,
)
from smsgw.credentials import ray_token
from smsgw.state import MessageState, StateRecord, StateStore


def test_authorized_by_the_cluster_token_or_the_cookie_derived_from_it() -> None:
    assert authorized("s3cret", "Bearer s3cret", None)
    assert authorized("s3cret", "bearer s3cret", None)
    assert authorized("s3cret", None, session_cookie("s3cret"))
    assert not authorized("s3cret", None, "s3cret"), "the cookie is never the token itself"
    assert not authorized("s3cret", None, session_cookie("other"))
    assert not authorized("s3cret", None, None)
    assert not authorized("s3cret", "Bearer s3cre", None)
    assert not authorized("s3cret", "Basic s3cret", "nope")
    assert session_cookie("s3cret") != "s3cret"


def test_no_token_opens_nothing() -> None:
    assert not authorized("", "Bearer ", "")
    assert not authorized("", "Bearer ", session_cookie(""))


def test_the_cluster_token_comes_from_the_environment_before_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, named = tmp_path / "ray_auth_token", tmp_path / "named"
    ours.write_text("ours\n")
    named.write_text("named\n")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert ray_token(ours) == "ours"
    assert ray_token(tmp_path / "missing") is None
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(named))
    assert ray_token(ours) == "named"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "inline")
    assert ray_token(ours) == "inline"


def _series(accepted: float, actor: str = "listener@a") -> dict[tuple[str, ...], float]:
    return {(actor, "accepted", "acme", ""): accepted}


def test_window_counts_growth_in_the_last_minute_with_restarts_and_gaps() -> None:
    w = RateWindow(window_s=60)
    w.add(0, _series(100))  # baseline: the console started after the gateway
    w.add(1, _series(110))
    w.add(2, {})  # the listener did not answer in time: no jump when it is back
    w.add(3, _series(115))
    w.add(4, _series(5))  # restarted: counts from 0 again
    w.add(5, {**_series(5), ("listener@a", "accepted", "new", ""): 3})  # a new series
    assert w.increases() == {
        ("listener@a", "accepted", "acme", ""): 20.0,
        ("listener@a", "accepted", "new", ""): 3.0,
    }
    w.add(64, _series(5))  # 1..4 have left the window; 4 -> 5 is the reference
    assert w.increases() == {("listener@a", "accepted", "new", ""): 3.0}
    w.add(70, _series(5))
    assert w.increases() == {}


def _status() -> dict[str, object]:
    return {
        "nodes": [{"id": "n1" * 10, "address": "127.0.0.1"}],
        "lag": {"smsgw.submit": 3},
        "actors": {
            "listener@127.0.0.1:n1n1n1": {
                "state": "ALIVE",
                "node": "n1" * 10,
                "listen": "0.0.0.0:2775",
                "binds": {"acme": 2},
                "in_flight": 1,
                "deliverer": {"waiting": 4},
                "counters": [
                    ["accepted", "acme", "", 10],
                    ["rejected", "acme", "ESME_RINVDSTADR", 2],
                ],
                "failures": [{"id": "m1", "customer": "acme", "updated_at": 5.0}],
            },
            "provider:p#0": {
                "state": "ALIVE",
                "provider": "p",
                "bind": {"bound": True, "accepted": 7, "errors": {"0x45": 1}},
            },
            "provider:p#1": {
                "state": "ALIVE",
                "provider": "p",
                "bind": {"bound": False, "connects": 3},
            },
            "provider:q#0": {"state": "UNREACHABLE", "error": "no answer in 5 s"},
        },
    }


def test_summary_shows_binds_rates_errors_queues_and_failures() -> None:
    status = _status()
    w = RateWindow()
    w.add(0, {})
    w.add(1, counter_series(status["actors"]))  # type: ignore[arg-type]
    model = summarize(status, w.increases(), now=1.0)
    assert model["customers"] == [
        {
            "customer": "acme",
            "binds": 2,
            "accepted": 10,
            "rejected": 2,
            "throttled": 0,
            "delivered": 0,
        }
    ]
    p = {x["provider"]: x for x in model["providers"]}
    assert (p["p"]["up"], p["p"]["total"], p["p"]["sent"], p["p"]["errors"]) == (1, 2, 7, 1)
    assert p["p"]["binds"][1]["why"] == "not bound (connection attempts: 3)"
    assert p["q"]["binds"][0]["why"] == "no answer in 5 s"
    assert model["errors"] == [
        {"where": "customer acme", "status": "ESME_RINVDSTADR", "count": 2},
        {"where": "provider p", "status": "0x45", "count": 1},
    ]
    assert model["queues"] == {
        "lag": {"smsgw.submit": 3},
        "waiting_for_receiver": 4,
        "kafka_in_flight": 1,
        "multipart_parts_held": 0,
    }
    assert model["nodes"][0]["state"] == "ALIVE"
    assert [f["id"] for f in model["failures"]] == ["m1"]


def test_pages_escape_what_they_show() -> None:
    page = message_page("<x>", {"id": "<x>", "customer": "a&b"})
    assert "<x>" not in page and "&lt;x&gt;" in page and "a&amp;b" in page
    assert 'fetch("/api/summary"' in console_page()


def test_state_store_remembers_recent_failures_once() -> None:
    store = StateStore(recent_failures=2)
    for i, state in enumerate([MessageState.DELIVERED, MessageState.UNDELIVERABLE] * 2):
        store.apply(StateRecord(f"m{i}", "c", "4915100000001", state, float(i)))
    store.apply(StateRecord("m1", "c", "4915100000001", MessageState.UNDELIVERABLE, 9.0))
    assert [r.id for r in store.failures] == ["m1", "m3"]
    assert store.get("m3") is not None and store.get("m3").public()["source_addr"] == (  # type: ignore[union-attr]
        "4915*******01"
    )
