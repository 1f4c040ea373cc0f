"""Submitting multipart messages as a customer and checking what a provider received."""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks.smsc_sim.stats import ReceivedSubmit
from smsgw.segment import Part, join_parts
from smsgw.smpp.udh import concat_info, parse_udh, split_udh
from tests.helpers.customer import Customer


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


def submit_part(c: Customer, dest: str, part: Part) -> int:
    return c.submit(dest, part.short_message, esm_class=0x40, data_coding=0)


def submit_acked(c: Customer, dest: str, part: Part) -> str:
    """Submit one part and wait for its response, so Kafka has it before the next."""
    seq = submit_part(c, dest, part)
    wait_for(lambda: seq in c.accepted_ids(), 30, "submit_sm_resp")
    return c.accepted_ids()[seq]


def assert_one_udh_message(got: list[ReceivedSubmit], text: str) -> None:
    """`got` is one GSM message with a concatenation UDH: one bind, in order, one ref."""
    total = len(got)
    assert len({r.bind_id for r in got}) == 1, "all parts on one bind"
    infos = [concat_info(parse_udh(split_udh(r.short_message)[0])) for r in got]
    assert [i.seq if i else 0 for i in infos] == list(range(1, total + 1)), "in order"
    assert len({i.ref if i else -1 for i in infos}) == 1, "one reference"
    assert all(i and i.total == total for i in infos)
    bodies = [Part(n + 1, total, split_udh(r.short_message)[1]) for n, r in enumerate(got)]
    assert join_parts(bodies, 0) == text
