"""A customer's answer to a receipt/MO decides that delivery alone (issue 10 item 6, issue 12
item 6): permanent errors and generic_nack end it, temporary errors retry it on its own timer
while the customer's other deliveries flow past it."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
import smpplib.smpp

from smsgw.db.routes import add_mo_route, add_mt_route
from smsgw.server.deliverer import backoff_s
from smsgw.smpp.status import CommandStatus as S
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.kafka import drain
from tests.helpers.sims import Sims, add_sim_provider, wait_bound

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NACK = -1  # answer with generic_nack status 0 instead of deliver_sm_resp


class PickyCustomer(Customer):
    """Answers the n-th distinct receipt with a scripted list of statuses, then 0.

    Every arrival is recorded with its time, so the test sees redeliveries and order.
    """

    def __init__(self, *args: Any, script: list[list[int]], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.script = script
        self.answers: dict[str, list[int]] = {}
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, receipted id or "MO")
        self.guard = threading.Lock()

    def bind(self, timeout: float = 30.0) -> PickyCustomer:
        super().bind(timeout)
        self.client._message_received = self._answer  # smpplib answers through this hook
        return self

    def _answer(self, pdu: Any) -> None:
        self._received(pdu)
        rid = (pdu.receipted_message_id or b"").decode().rstrip("\0") if pdu.esm_class else ""
        with self.guard:
            self.arrivals.append((time.monotonic(), rid or "MO"))
            if rid and rid not in self.answers:
                n = len(self.answers)
                self.answers[rid] = list(self.script[n]) if n < len(self.script) else []
            todo = self.answers.get(rid)
            status = todo.pop(0) if todo else 0
        if status == NACK:
            reply = smpplib.smpp.make_pdu("generic_nack", client=self.client, status=0)
        else:
            reply = smpplib.smpp.make_pdu("deliver_sm_resp", client=self.client, status=status)
        reply.sequence = pdu.sequence
        self.client.send_pdu(reply)

    def times(self, rid: str) -> list[float]:
        with self.guard:
            return [t for t, r in self.arrivals if r == rid]


def test_refusals_end_a_delivery_and_retries_do_not_block_the_others(
    node: GatewayNode, sims: Sims
) -> None:
    gw = node
    smsc = sims.start("smsc", receipt_delay=0.2)
    gw.add_customer("picky", "pw")
    add_sim_provider(gw, "smsc", smsc.port, tps=200)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="smsc")
        add_mo_route(conn, "777", "picky")
    wait_bound(gw, sims, ["smsc"])
    t_appn = int(S.ESME_RX_T_APPN)
    c = PickyCustomer(
        gw.host,
        gw.port,
        "picky",
        "pw",
        # 1st receipt: 0x65; 2nd: generic_nack status 0; 3rd: 0x64 three times, then 0.
        script=[[int(S.ESME_RX_P_APPN), 0], [NACK, 0], [t_appn, t_appn, t_appn, 0]],
    ).bind()
    try:
        for i in range(3):
            c.submit(f"4917{i:07d}")
        c.wait(lambda: len(c.answers) == 3, 30, f"first receipts: {gw.pipeline_stats()}")
        with c.guard:
            permanent_p, nacked, temporary = list(c.answers)
        c.wait(lambda: len(c.times(temporary)) >= 3, 30, "three refusals of the temporary one")
        third_refusal = c.times(temporary)[2]
        # Its next attempt is backoff_s(3) = 8 s away. Meanwhile: 6 receipts and one MO.
        for i in range(3, 9):
            c.submit(f"4917{i:07d}")
        sims.loop.call(smsc.send_mo, "4917712345678", "777", "mo while one waits")
        c.wait(lambda: len(c.times(temporary)) >= 4, 60, "the temporary one delivered at last")
        c.wait(lambda: len(c.answers) == 9 and len(c.mos) == 1, 30, "every other delivery")
        final = c.times(temporary)[3]
        assert final - third_refusal >= backoff_s(3) - 0.5, "it waited on its own timer"
        with c.guard:
            others = [t for t, r in c.arrivals if r not in (permanent_p, nacked, temporary)]
        assert len(others) == 7
        assert max(others) < final, (
            "the customer's other receipts and MO flowed while one waited for its retry: "
            f"last other at +{max(others) - third_refusal:.1f} s, retry at "
            f"+{final - third_refusal:.1f} s"
        )
        # Permanent refusals are never redelivered (the old code retried them after 2 s).
        assert c.times(permanent_p) == c.times(permanent_p)[:1]
        assert len(c.times(nacked)) == 1

        # The customer records a delivery before it answers: the gateway counts the
        # last answer a moment after the last arrival (seen at load ~40: 7 of 8).
        def counted() -> bool:
            stats: Any = gw.pipeline_stats()["deliverer"]
            return bool(stats["failed"] == 2 and stats["delivered"] == 8)

        c.wait(
            counted, 30, f"every answer counted (at the start: {gw.pipeline_stats()['deliverer']})"
        )
        assert gw.counters()[("delivery_failed", "picky", "receipt")] == 2
        # Both refusals are marked finished, so a replay after a crash skips them.
        marks = drain(gw.bootstrap, gw.topics.delivered, expect=10, timeout=30)
        assert sorted(m.value() or b"" for m in marks) == [b"1"] * 8 + [b"failed"] * 2
    finally:
        c.close()
