"""StatusBook: totals survive restarts, rates over the last minute, what counts as unhealthy."""

from __future__ import annotations

from typing import Any

from smsgw.status import StatusBook


def bind(pid: int, accepted: int, *, bound: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "state": "ALIVE",
        "pid": pid,
        "provider": "smsc1",
        "bind": {"accepted": accepted, "submitted": accepted, "bound": bound, **extra},
    }


def listener(pid: int, accepted: int, rejected: int = 0) -> dict[str, Any]:
    rows = [["accepted", "shop", "", accepted]]
    if rejected:
        rows.append(["rejected", "shop", "ESME_RINVDSTADR", rejected])
    return {"state": "ALIVE", "pid": pid, "counters": rows}


def test_totals_survive_an_actor_restart_and_a_supervisor_restart() -> None:
    book = StatusBook()
    book.observe({"provider:smsc1#0": bind(1, 40)}, now=0)
    book.observe({"provider:smsc1#0": bind(1, 50)}, now=1)
    book.observe({"provider:smsc1#0": bind(2, 5)}, now=2)  # restarted: counts from 0
    assert book.totals()["provider|smsc1|accepted"] == 55
    again = StatusBook.resumed(book.totals())  # a new supervisor, from the stored report
    again.observe({"provider:smsc1#0": bind(2, 7)}, now=3)
    assert again.totals()["provider|smsc1|accepted"] == 62


def test_rates_are_over_the_last_minute() -> None:
    book = StatusBook()
    for t in range(0, 121, 10):
        book.observe({"listener@n:1": listener(1, accepted=t * 5)}, now=float(t))
    rep = book.report({})
    assert rep["customer"]["shop"]["per_s"]["accepted"] == 5.0
    assert rep["customer"]["shop"]["totals"]["accepted"] == 600
    assert book.history[0][0] >= 50, "older samples are dropped"


def test_errors_by_status_and_why_a_provider_is_down() -> None:
    book = StatusBook()
    actors = {
        "provider:smsc1#0": bind(
            1, 0, bound=False, errors={"0x45": 20}, last_error="bind refused: ESME_RINVPASWD"
        ),
        "listener@n:1": listener(1, 10, rejected=3),
    }
    book.observe(actors, now=0)
    rep = book.report(actors)
    p = rep["provider"]["smsc1"]
    assert p["errors"] == {"0x45": 20}
    assert p["binds"] == 1 and p["binds_up"] == 0
    assert rep["problems"] == ["provider smsc1 down: bind refused: ESME_RINVPASWD"]
    assert rep["customer"]["shop"]["totals"]["rejected ESME_RINVDSTADR"] == 3


def test_healthy_when_one_bind_of_two_is_up() -> None:
    book = StatusBook()
    actors = {"provider:smsc1#0": bind(1, 1), "provider:smsc1#1": bind(2, 1, bound=False)}
    book.observe(actors, now=0)
    assert book.report(actors)["problems"] == []


def test_a_stage_restarting_in_a_loop_is_a_problem() -> None:
    book = StatusBook()
    for i in range(5):
        book.observe({"router#0": {"state": "ALIVE", "pid": i}}, now=float(i * 10))
    assert book.report({})["problems"] == ["router#0 restarted 4 times in 300 s"]
    late = StatusBook()
    for i in range(3):
        late.observe({"router#0": {"state": "ALIVE", "pid": i}}, now=float(i * 400))
    assert late.report({})["problems"] == [], "restarts far apart are not a loop"


def test_lag_that_keeps_growing_is_a_problem_a_steady_one_is_not() -> None:
    book = StatusBook()
    for n in (50, 200, 400, 900):
        book.observe_lag({"t.submit": n, "t.deliver": 500})
    assert book.report({})["problems"] == ["lag on t.submit growing (900 records)"]
