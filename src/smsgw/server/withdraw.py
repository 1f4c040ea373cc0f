"""The listener's side of "an error answer is never followed by a send" (issue 10 item 8).

A submit is answered ``ESME_RSYSERR`` when Kafka's delivery report says the
record failed, typically a timeout, or when the listener's own deadline (the
produce timeout, smsgw.server.submit_outcome) passes with no report yet: the
record may nevertheless have been written (a broker that was paused writes it
when it resumes; a leader below min ISR commits what it appended once a
follower is back). For each such record this producer writes a withdrawal
marker (smsgw.message.Withdrawal) with the record's key, so on the same
``submit`` partition and, being produced after the record by the same
producer, after it in the log. The marker is queued before the customer's
answer is written (the failed report's callback, or ``give_up`` at the
deadline, runs first) and retried until Kafka takes it; one marker per record.

Routers and provider binds drop a withdrawn message that they have not sent
(docs/ARCHITECTURE.md, invariant 1).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from smsgw import log
from smsgw.kafka.producer import AsyncProducer, ProduceError
from smsgw.message import Withdrawal, is_withdrawal

RETRY_S = 1.0
MAX_ATTEMPTS = 300  # about five minutes of Kafka trouble at RETRY_S plus the produce timeout


class WithdrawingProducer(AsyncProducer):
    def __init__(self, *args: Any, submit_topic: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.submit_topic = submit_topic
        self.withdrawals = 0
        self.log = log.get("smsgw.withdraw")
        # Submit records without a report yet: (value, key) to withdraw them by.
        self._submits: dict[asyncio.Future[Any], tuple[bytes, bytes | None]] = {}

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None
    ) -> asyncio.Future[Any]:
        fut = super().produce(topic, value, key)
        if topic == self.submit_topic and value is not None and not is_withdrawal(value):
            self._submits[fut] = (value, key)
            fut.add_done_callback(self._reported)
        return fut

    def give_up(self, fut: asyncio.Future[Any]) -> None:
        """The customer is answered an error before the record's report: withdraw it now."""
        record = self._submits.pop(fut, None)
        super().give_up(fut)
        if record is not None:
            self._withdraw(*record)

    def _reported(self, fut: asyncio.Future[Any]) -> None:
        record = self._submits.pop(fut, None)
        if record is None or fut.cancelled() or fut.exception() is None:
            return  # given up (withdrawn then), or on Kafka
        self._withdraw(*record)

    def _withdraw(self, value: bytes, key: bytes | None) -> None:
        d = orjson.loads(value)
        marker = Withdrawal(d["id"], d["customer"], d["src"][0], time.time())
        self.withdrawals += 1
        self.log.warning("submit answered with an error: withdrawn", id=marker.id)
        self._send(marker.encode(), key, 1)

    def _send(self, marker: bytes, key: bytes | None, attempt: int) -> None:
        try:
            fut = super().produce(self.submit_topic, marker, key)
        except ProduceError:
            self._retry(marker, key, attempt)
            return
        fut.add_done_callback(
            lambda f: (
                None
                if f.cancelled() or f.exception() is None
                else self._retry(marker, key, attempt)
            )
        )

    def _retry(self, marker: bytes, key: bytes | None, attempt: int) -> None:
        if attempt >= MAX_ATTEMPTS:
            self.log.error("withdrawal could not be written", marker=marker.decode())
            return
        asyncio.get_running_loop().call_later(RETRY_S, self._send, marker, key, attempt + 1)
