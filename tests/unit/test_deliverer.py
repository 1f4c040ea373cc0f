"""What a customer's answer to a receipt/MO deliver_sm means for that delivery."""

import pytest

from smsgw.server.deliverer import Outcome, backoff_s, classify
from smsgw.smpp import events as ev
from smsgw.smpp.status import CommandStatus as S
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
