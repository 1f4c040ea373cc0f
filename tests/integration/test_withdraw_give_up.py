"""A record given up at the listener's deadline is withdrawn at once, and only once.

No broker: a closed loopback port, so librdkafka can only keep the records
queued until their timeout. The marker must be queued when the listener gives
the record up (before the error answer goes out, so behind the record on its
partition), not when librdkafka's report comes, which below min ISR came up to
3 s after the 5-s produce timeout (issue 14): later than the provider bind's
hold for a late message allows for (outbox.withdrawal_hold_s).
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from smsgw.message import encode
from smsgw.server.withdraw import WithdrawingProducer
from tests.helpers.messages import accepted_message

# A real librdkafka producer (no broker): what its reports do, not our logic alone.
pytestmark = pytest.mark.integration


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_given_up_records_are_withdrawn_at_once_reported_ones_by_their_report() -> None:
    producer = WithdrawingProducer(_closed_port(), timeout_s=0.5, submit_topic="submit")
    try:
        given_up, reported = (accepted_message(i) for i in ("1", "2"))
        a = producer.produce("submit", encode(given_up), given_up.kafka_key)
        b = producer.produce("submit", encode(reported), reported.kafka_key)
        producer.give_up(a)
        assert a.cancelled()
        assert producer.withdrawals == 1 and producer.in_flight == 3  # two records, one marker
        done, _ = await asyncio.wait([b], timeout=10)
        assert b in done and b.exception() is not None
        # b withdrawn by its failed report (its callback ran before the wait's); a's
        # report, whenever it comes, finds its future cancelled: no second marker.
        assert producer.withdrawals == 2
    finally:
        await producer.close()
