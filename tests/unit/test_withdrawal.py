"""Withdrawal markers on ``submit``: recognised by their first octets, never as a message."""

from __future__ import annotations

import pytest

from smsgw.message import RecordError, Withdrawal, decode, encode, is_withdrawal
from tests.helpers.messages import accepted_message


def test_round_trip_and_recognition() -> None:
    w = Withdrawal("123", "acme", "4915100000001", 1000.5)
    raw = w.encode()
    assert is_withdrawal(raw)
    assert Withdrawal.decode(raw) == w
    with pytest.raises(RecordError):
        decode(raw)  # a stage that did not know markers would not take it for a message


def test_messages_are_not_withdrawals() -> None:
    assert not is_withdrawal(encode(accepted_message("123")))
    assert not is_withdrawal(None)
    with pytest.raises(RecordError):
        Withdrawal.decode(b'{"withdraw": "1"}')
