from __future__ import annotations

import struct

from smsgw.receipts import (
    TAG_MESSAGE_STATE,
    TAG_NETWORK_ERROR_CODE,
    TAG_RECEIPTED_MESSAGE_ID,
    customer_wants,
    is_receipt,
    network_error_for_status,
    parse_receipt,
    receipt_delivery_id,
    receipt_tlvs,
    render_receipt_text,
)
from smsgw.state import MessageState as M

TEXT = (
    b"id:0A1B2C3D sub:001 dlvrd:001 submit date:2611270405 done date:2611270406 "
    b"stat:DELIVRD err:000 text:Hello world"
)


def test_parses_appendix_b_text() -> None:
    r = parse_receipt(TEXT, {})
    assert r is not None
    assert (r.message_id, r.state, r.err) == ("0A1B2C3D", M.DELIVERED, "000")
    assert (r.submit_date, r.done_date, r.text) == ("2611270405", "2611270406", "Hello world")


def test_tlvs_win_over_the_text() -> None:
    tlvs = {TAG_RECEIPTED_MESSAGE_ID: b"999\0", TAG_MESSAGE_STATE: bytes([5])}
    r = parse_receipt(TEXT, tlvs)
    assert r is not None and r.message_id == "999" and r.state is M.UNDELIVERABLE


def test_unknown_stat_and_missing_id() -> None:
    r = parse_receipt(b"id:7 stat:WHATEVER err:12", {})
    assert r is not None and r.state is M.UNKNOWN and r.err == "12"
    assert parse_receipt(b"no receipt here", {}) is None


def test_rendered_receipt_round_trips_and_carries_tlvs() -> None:
    text = render_receipt_text("123", M.UNDELIVERABLE, 901, submit_ts=0, done_ts=60, text="x" * 30)
    r = parse_receipt(text, {})
    assert r is not None and (r.message_id, r.state, r.err) == ("123", M.UNDELIVERABLE, "901")
    assert r.text == "x" * 20, "only the first 20 characters"
    nec = network_error_for_status(0x0B)
    tlvs = dict(receipt_tlvs("123", M.UNDELIVERABLE, nec))
    assert tlvs[TAG_RECEIPTED_MESSAGE_ID] == b"123\0"
    assert tlvs[TAG_MESSAGE_STATE] == bytes([5])
    assert struct.unpack(">BH", tlvs[TAG_NETWORK_ERROR_CODE]) == (3, 0x0B)


def test_which_receipts_a_customer_asked_for() -> None:
    assert customer_wants(1, M.DELIVERED) and customer_wants(1, M.UNDELIVERABLE)
    assert not customer_wants(2, M.DELIVERED) and customer_wants(2, M.EXPIRED)
    assert not customer_wants(0, M.UNDELIVERABLE)
    assert not customer_wants(1, M.ENROUTE) and customer_wants(0x11, M.ENROUTE)


def test_receipt_esm_class() -> None:
    assert is_receipt(0x04) and is_receipt(0x08) and not is_receipt(0x00) and not is_receipt(0x40)


def test_every_final_receipt_of_a_message_shares_one_delivery_id() -> None:
    """The deliverer sends one final receipt per message and destination (issue 10)."""
    finals = {receipt_delivery_id("7", "4912", s) for s in M if s.final}
    assert finals == {"r:7:4912:final"}
    intermediate = {receipt_delivery_id("7", "4912", s) for s in M if not s.final}
    assert len(intermediate) == 3 and not intermediate & finals
    assert receipt_delivery_id("7", "4913", M.DELIVERED) != receipt_delivery_id(
        "7", "4912", M.DELIVERED
    )
