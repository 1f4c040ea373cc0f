"""What lets the supervisor's rounds be rare (issue 13): ``fleet.all_well`` decides the
cadence (1 s while anything is changing or not well, 5 s once all is), and
``status.digest`` decides whether the report is written again."""

from __future__ import annotations

from typing import Any

from smsgw.fleet import all_well
from smsgw.status import digest

HOST = "connectors@n:abc"


def well() -> dict[str, dict[str, Any]]:
    return {
        "listener@n:abc": {"state": "ALIVE", "pid": 1, "uptime_s": 3.0},
        HOST: {"state": "ALIVE", "pid": 2, "assigned_version": 7},
        "provider:a#0": {"state": "ALIVE", "bind": {"bound": True, "submitted": 0}},
    }


ASSIGNED = {HOST: (7, [("a", 0)])}
EXPECTED = ["listener@n:abc", HOST]


def test_all_well_when_every_actor_answers_and_every_host_runs_what_it_was_sent() -> None:
    assert all_well(well(), EXPECTED, ASSIGNED)


def test_not_well_while_an_actor_has_not_answered_or_is_unreachable() -> None:
    assert not all_well(well(), [*EXPECTED, "router#0"], ASSIGNED)
    actors = well()
    actors["listener@n:abc"]["state"] = "UNREACHABLE"
    assert not all_well(actors, EXPECTED, ASSIGNED)


def test_not_well_while_a_host_restarted_or_runs_an_older_assignment() -> None:
    for version in (0, 6):  # restarted by Ray (version 0); a newer one still on its way
        actors = well()
        actors[HOST]["assigned_version"] = version
        assert not all_well(actors, EXPECTED, ASSIGNED)
    assert not all_well(well(), EXPECTED, {})  # nothing sent to it yet


def test_not_well_while_a_bind_is_unbound() -> None:
    actors = well()
    actors["provider:a#0"]["bind"]["bound"] = False
    assert not all_well(actors, EXPECTED, ASSIGNED)


def test_the_digest_ignores_the_clock_and_sees_every_change() -> None:
    nodes = [{"id": "abc", "address": "n"}]
    report = {"provider": {"a": {"binds_up": 1}}, "problems": []}
    base = digest(nodes, well(), {}, report)
    later = well()
    later["listener@n:abc"]["uptime_s"] = 99.0  # only time passed
    assert digest(nodes, later, {}, report) == base
    changed = [
        (nodes, well(), {}, {**report, "problems": ["provider a down"]}),
        ([*nodes, {"id": "def", "address": "m"}], well(), {}, report),
        (nodes, {**well(), HOST: {**well()[HOST], "pid": 3}}, {}, report),
        (nodes, well(), {"smsgw.out.a": 4}, report),
    ]
    for parts in changed:
        assert digest(*parts) != base, parts
