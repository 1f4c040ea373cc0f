"""When and how one submit is answered: its records' delivery reports, or the produce timeout.

A submit is answered status 0 only from Kafka's delivery report of its record
(invariant 1), one record per destination. librdkafka's report can come well
after ``message.timeout.ms``: a record carried by a produce request is
reported only when that request ends. With two brokers down (below min ISR,
and the KRaft quorum lost, so the leader's ISR never shrinks) the leader holds
such a request for its own timeout: refusals came up to 8-14 s after the
submit against a 5-s produce timeout, and 17 s with librdkafka's default
request timeout (issue 14). So the listener keeps its own deadline: the produce timeout
after it read the submit, whatever has no report by then counts as failed, the
answer goes out, and those records are given up (smsgw.server.withdraw writes
their withdrawal markers: a record may still land after its error answer).

Sans-IO: nothing here reads a clock or touches Kafka; times are the event
loop's seconds, passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsgw.smpp.status import CommandStatus


def answer_deadline(read_at: float, timeout_s: float) -> float:
    """The latest the customer's answer may go out: ``timeout_s`` after the submit was read.

    The same instant librdkafka stops trying to write the record
    (``message.timeout.ms`` counts from the produce call, made when the submit
    is read), so no record is sent to Kafka after its answer; one already in a
    request may still land, which its withdrawal covers.
    """
    return read_at + timeout_s


@dataclass(frozen=True)
class Answer:
    ok: list[bool]  # per destination: its record is on Kafka
    failure: CommandStatus  # the status of the others (SMPP 3.4 §5.1.3)
    given_up: list[int]  # produced records without a report when answered: to withdraw


class SubmitOutcome:
    """The reports of one submit's records (``produced`` of ``records`` went to the producer).

    Records past ``produced`` were never produced (the backlog was full):
    they count as failed from the start, with ``failure``.
    """

    def __init__(
        self,
        records: int,
        produced: int,
        *,
        read_at: float,
        timeout_s: float,
        failure: CommandStatus | None = None,
    ) -> None:
        assert 0 < produced <= records
        self.deadline = answer_deadline(read_at, timeout_s)
        self.failure = failure or CommandStatus.ESME_RSYSERR
        self.ok = [False] * records
        self.pending = set(range(produced))
        self.answered = False

    def reported(self, index: int, ok: bool) -> Answer | None:
        """Record ``index`` has its report; the answer once every produced record has one."""
        if self.answered:
            return None  # answered at the deadline: the record was given up then
        self.pending.discard(index)
        self.ok[index] = ok
        return self._answer() if not self.pending else None

    def expire(self, now: float) -> Answer | None:
        """The deadline's timer fired: the answer, unless already given or still early."""
        if self.answered or now < self.deadline:
            return None
        return self._answer()

    def _answer(self) -> Answer:
        self.answered = True
        given_up, self.pending = sorted(self.pending), set()
        return Answer(list(self.ok), self.failure, given_up)
