"""What a customer's answer to a receipt/MO deliver_sm means for that delivery."""

import orjson
import pytest

from smsgw.pipeline.correlator import customer_receipt
from smsgw.records import Delivery, InboundReceipt, Pairing
from smsgw.server.deliverer import LOCAL, Outcome, backoff_s, classify, session_home
from smsgw.smpp import events as ev
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.submission import Address
from smsgw.state import MessageState
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
