"""A submit is answered by its reports or at the produce timeout, whichever first (issue 14).

Below min ISR librdkafka reported records up to 8-14 s after the submit (a 5-s produce
timeout: a record in a request is reported when the request ends); the
listener answers at its own deadline and gives the unreported records up.
"""

from __future__ import annotations

from smsgw.server.submit_outcome import SubmitOutcome, answer_deadline
from smsgw.smpp.status import CommandStatus as S


def test_the_deadline_is_the_produce_timeout_after_the_submit_was_read() -> None:
    assert answer_deadline(100.0, 5.0) == 105.0
    assert SubmitOutcome(1, 1, read_at=100.0, timeout_s=5.0).deadline == 105.0


def test_reports_before_the_deadline_answer_and_the_timer_then_does_nothing() -> None:
    o = SubmitOutcome(1, 1, read_at=0.0, timeout_s=5.0)
    answer = o.reported(0, True)
    assert answer is not None and answer.ok == [True] and answer.given_up == []
    assert o.expire(5.0) is None


def test_no_report_by_the_deadline_answers_an_error_and_gives_the_record_up() -> None:
    o = SubmitOutcome(1, 1, read_at=10.0, timeout_s=5.0)
    assert o.expire(14.99) is None  # a timer run early answers nothing
    answer = o.expire(15.0)
    assert answer is not None
    assert (answer.ok, answer.failure, answer.given_up) == ([False], S.ESME_RSYSERR, [0])
    # The report that comes after the answer changes nothing (never a second answer).
    assert o.reported(0, True) is None
    assert o.expire(20.0) is None


def test_a_late_loop_still_answers_once_at_its_first_chance() -> None:
    o = SubmitOutcome(1, 1, read_at=0.0, timeout_s=5.0)
    answer = o.expire(7.5)
    assert answer is not None and answer.given_up == [0]


def test_submit_multi_answers_what_was_reported_and_gives_up_the_rest() -> None:
    o = SubmitOutcome(3, 3, read_at=0.0, timeout_s=5.0)
    assert o.reported(2, True) is None
    assert o.reported(0, False) is None  # failed, reported: withdrawn by its report
    answer = o.expire(5.0)
    assert answer is not None
    assert answer.ok == [False, False, True]
    assert answer.given_up == [1]


def test_records_never_produced_count_as_failed_with_the_refusal() -> None:
    o = SubmitOutcome(3, 1, read_at=0.0, timeout_s=5.0, failure=S.ESME_RMSGQFUL)
    answer = o.reported(0, True)  # the only one produced: the answer comes with it
    assert answer is not None
    assert (answer.ok, answer.failure, answer.given_up) == (
        [True, False, False],
        S.ESME_RMSGQFUL,
        [],
    )
