"""What a customer's answer to a receipt/MO deliver_sm means for that delivery."""

import dataclasses

import orjson
import pytest

from smsgw.pipeline.correlator import customer_receipt
from smsgw.receipts import ERR_UNKNOWN_OUTCOME, failure_receipt
from smsgw.records import Delivery, InboundReceipt, Pairing
from smsgw.server.deliverer import LOCAL, Outcome, backoff_s, classify, session_home
from smsgw.server.delivery_logic import STATE_RECHECK_S, STATE_WAIT_S, DeliveryLogic, Pending
from smsgw.smpp import events as ev
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.submission import Address
from smsgw.state import MessageState, StateRecord
from tests.helpers.messages import accepted_message
from tests.unit.test_smpp_session import DLR, T0, bound_server, header, raw


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (S.ESME_ROK, Outcome.DELIVERED),
        (S.ESME_RX_P_APPN, Outcome.FAILED),
        (S.ESME_RX_R_APPN, Outcome.FAILED),
        (S.ESME_RINVDSTADR, Outcome.FAILED),
        (S.ESME_RX_T_APPN, Outcome.RETRY),
        (S.ESME_RTHROTTLED, Outcome.RETRY),
        (S.ESME_RMSGQFUL, Outcome.RETRY),
        (S.ESME_RSYSERR, Outcome.RETRY),
        (None, Outcome.RETRY),  # no answer: unknown, so tried again
    ],
)
def test_deliver_sm_resp_status(status: S | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


@pytest.mark.parametrize("status", [S.ESME_ROK, S.ESME_RX_T_APPN, S.ESME_RINVCMDID])
def test_generic_nack_is_a_failure_whatever_its_status(status: S) -> None:
    assert classify(status, nacked=True) is Outcome.FAILED


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_s(n) for n in (1, 2, 3)] == [2, 4, 8]
    assert backoff_s(30) == 60


def test_session_reports_a_generic_nack_answer_as_nacked() -> None:
    """§4.3: generic_nack status 0 to our deliver_sm is not a deliver_sm_resp status 0."""
    s = bound_server()
    seq = s.send_deliver(DLR, T0)
    s.data_to_send()
    events = s.feed(header(0x80000000, seq), T0)
    assert events == [ev.DeliverResponse(seq, "deliver_sm", S.ESME_ROK, "", True)]
    assert s.outstanding == 0
    seq = s.send_deliver(DLR, T0)
    events = s.feed(raw("deliver_sm_resp", seq), T0)
    assert events == [ev.DeliverResponse(seq, "deliver_sm", S.ESME_ROK, "", False)]


def test_a_receipt_goes_to_its_session_while_it_is_bound() -> None:
    here = {"n1/a1/1", "n1/a1/2"}
    peers = {"n2/b2/1": "listener@n2"}
    assert session_home("n1/a1/2", here, peers) == LOCAL
    assert session_home("n2/b2/1", here, peers) == "listener@n2"


def test_a_receipt_whose_session_is_gone_goes_to_any_receiving_bind() -> None:
    here, peers = {"n1/a1/1"}, {"n2/b2/1": "listener@n2"}
    assert session_home("n1/a1/9", here, peers) is None  # unbound (or a transmitter)
    assert session_home("n1/old/1", here, peers) is None  # an earlier listener's session
    assert session_home("", here, peers) is None  # MO, or a record from before sessions


def test_receipt_records_carry_the_submitting_session() -> None:
    src, dst = Address("4915100000001", 1, 1), Address("491700000001", 1, 1)
    p = Pairing("k", "p", "x", "gw1", "c", src, dst, 1, 0.0, session="n1/a1/7")
    assert Pairing.decode(p.encode()).session == "n1/a1/7"
    r = InboundReceipt("k", "p", "x", MessageState.DELIVERED, "000", None, 0.0)
    d = customer_receipt(Pairing.decode(p.encode()), r, ttl_s=60)
    assert Delivery.decode(d.encode()).session == "n1/a1/7"
    old = orjson.loads(d.encode())
    del old["ses"]  # a record written before sessions were recorded
    assert Delivery.decode(orjson.dumps(old)).session == ""


def _failure_and_mo(mid: str) -> list[Delivery]:
    m = accepted_message(mid, registered_delivery=2)
    receipt = failure_receipt(m, MessageState.UNDELIVERABLE, ERR_UNKNOWN_OUTCOME, now=T0)
    mo = dataclasses.replace(receipt, id="mo:1", kind="mo", message_id="", state=0)
    return [receipt, mo]


def _state(mid: str, state: MessageState, destination: str = "491701234567") -> StateRecord:
    return StateRecord(mid, "acme", "ACME", state, T0, 0, "receipt", destination)


def _run(logic: DeliveryLogic[int], now: float) -> list[Delivery]:
    """One dispatch of acme's queue to a bind with room; what went on the wire."""
    placed: list[Delivery] = []

    def place(item: Pending[int], targets: list[str], free: list[str]) -> bool:
        placed.append(item.delivery)
        logic.on_wire(item)
        return True

    logic.dispatch("acme", now, {"b": "b"}, ["b"], place)
    return placed


def test_a_final_receipt_telling_another_final_state_than_the_one_shown_is_not_sent() -> None:
    """Issue 10: the store shows DELIVERED (first final); a failure receipt decided again
    on a bind replay is finished unsent; MO is not looked at."""
    shown = {"m1": _state("m1", MessageState.DELIVERED)}
    logic: DeliveryLogic[int] = DeliveryLogic(shown=shown.get)
    for n, d in enumerate(_failure_and_mo("m1")):
        logic.take(n, 0, d)
    assert [d.kind for d in _run(logic, T0)] == ["mo"]
    assert logic.stats.contradicted == 1
    assert "r:m1:491701234567:final" not in logic.delivered  # no mark: a later one may pass


def test_a_final_receipt_waits_for_its_state_record_then_goes_as_it_is() -> None:
    """Read before the follower applied its state: looked at again; sent when the store
    shows the same final state, or once STATE_WAIT_S has passed without one."""
    shown: dict[str, StateRecord] = {}
    logic: DeliveryLogic[int] = DeliveryLogic(shown=shown.get)
    receipt = _failure_and_mo("m1")[0]
    logic.take(0, 0, receipt)
    assert _run(logic, T0) == []
    shown["m1"] = _state("m1", MessageState.UNDELIVERABLE)
    assert _run(logic, T0 + STATE_RECHECK_S) == [receipt]
    assert logic.stats.state_waits == 1
    never: dict[str, StateRecord] = {}
    late: DeliveryLogic[int] = DeliveryLogic(shown=never.get)
    late.take(0, 0, receipt)
    assert _run(late, T0) == []
    assert _run(late, T0 + STATE_WAIT_S / 2) == []
    assert _run(late, T0 + STATE_WAIT_S + 1) == [receipt]
    assert late.stats.unconfirmed == 1


def test_a_submit_multi_receipt_is_not_held_to_another_destinations_state() -> None:
    """A submit_multi's destinations share one id, and the store one state for it: a
    failure receipt for the second destination goes although the first is DELIVERED."""
    shown = {"m1": _state("m1", MessageState.DELIVERED, destination="491709999999")}
    logic: DeliveryLogic[int] = DeliveryLogic(shown=shown.get)
    receipt = _failure_and_mo("m1")[0]
    logic.take(0, 0, receipt)
    assert _run(logic, T0) == [receipt]
    assert logic.stats.contradicted == 0
