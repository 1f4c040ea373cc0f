"""Which id of a provider receipt pairs, in which format (issue 12 item 3)."""

from types import SimpleNamespace

import pytest

from smsgw.pipeline.correlator import Correlator
from smsgw.provider_ids import receipt_keys
from smsgw.receipts import TAG_RECEIPTED_MESSAGE_ID, parse_receipt
from smsgw.records import InboundReceipt, Pairing
from smsgw.smpp.submission import Address
from smsgw.state import MessageState


def test_tlv_read_in_the_submit_format_text_in_the_receipt_format() -> None:
    # hex submit_sm_resp id A0000001 in the TLV, its decimal in the text: one key.
    assert receipt_keys("p", "A0000001", "2684354561", "hex", "dec") == ("p:2684354561", None)


def test_a_hex_id_of_digits_only_is_read_as_hex_first() -> None:
    """TLV "1234" is hex 0x1234 = 4660; the decimal 1234 is another message (0x4D2)."""
    assert receipt_keys("p", "1234", None, "hex", "dec") == ("p:4660", None)
    # The text's reading is only the alternative (taken for the same handset alone).
    assert receipt_keys("p", "1234", "1234", "hex", "dec") == ("p:4660", "p:1234")


def test_disagreeing_ids_give_the_tlv_first_and_the_text_as_the_alternative() -> None:
    assert receipt_keys("p", "FF", "300", "hex", "dec") == ("p:255", "p:300")


def test_an_id_that_does_not_fit_its_format_is_not_a_candidate() -> None:
    assert receipt_keys("p", "zz", "300", "hex", "dec") == ("p:300", None)
    assert receipt_keys("p", None, "0300", "hex", "dec") == ("p:300", None)
    with pytest.raises(ValueError):
        receipt_keys("p", "zz", "x1", "hex", "dec")
    with pytest.raises(ValueError):
        receipt_keys("p", None, None, "hex", "dec")


def test_parse_receipt_keeps_both_ids() -> None:
    r = parse_receipt(
        b"id:2684354561 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
        b"stat:DELIVRD err:000 text:hi",
        {TAG_RECEIPTED_MESSAGE_ID: b"A0000001\0"},
    )
    assert r is not None
    assert (r.tlv_id, r.text_id, r.message_id) == ("A0000001", "2684354561", "A0000001")
    text_only = parse_receipt(b"id:42 stat:DELIVRD err:000", {})
    assert text_only is not None and (text_only.tlv_id, text_only.text_id) == (None, "42")


def test_inbound_receipt_carries_the_alternative_and_reads_old_records() -> None:
    r = InboundReceipt(
        "p:255", "p", "FF", MessageState.DELIVERED, "000", None, 1.0, "p:300", handset="4917"
    )
    again = InboundReceipt.decode(r.encode())
    assert again == r and again.alt == "p:300" and not again.forwarded
    assert again.handset == "4917"
    plain = InboundReceipt("p:1", "p", "1", MessageState.DELIVERED, "000", None, 1.0)
    assert b"alt" not in plain.encode() and InboundReceipt.decode(plain.encode()) == plain


def _pairing(key: str, dest: str) -> Pairing:
    return Pairing(key, "p", "x", f"gw-{key}", "c", Address("1", 1, 1), Address(dest, 1, 1), 1, 0.0)


def _choose(pairings: dict[str, Pairing], r: InboundReceipt) -> str | None:
    """The correlator's choice among its known pairings (no Kafka needed for the rule)."""
    fake = SimpleNamespace(
        pairings={k: (0, p) for k, p in pairings.items()}, _disagreeing_ids=lambda *_: None
    )
    found = Correlator._pairing(fake, r)  # type: ignore[arg-type]
    return None if found is None else found[1].message_id


def _receipt(key: str, alt: str | None, handset: str, forwarded: bool = False) -> InboundReceipt:
    return InboundReceipt(
        key, "p", "1234", MessageState.DELIVERED, "000", None, 1.0, alt, forwarded, handset
    )


def test_the_text_id_never_pairs_with_a_message_to_another_handset() -> None:
    # 0x4D2 = 1234 went to another handset; the receipt's own message (0x1234) is unknown here.
    other = {"p:1234": _pairing("p:1234", "4917000000")}
    assert _choose(other, _receipt("p:4660", "p:1234", "4917999999")) is None
    assert _choose(other, _receipt("p:1234", "p:4660", "4917999999", forwarded=True)) is None
    # The TLV's key pairs whatever the handset; the text's only for the same one.
    mine = {"p:4660": _pairing("p:4660", "4917999999")}
    assert _choose(mine | other, _receipt("p:4660", "p:1234", "4917999999")) == "gw-p:4660"
    same = {"p:1234": _pairing("p:1234", "+4917999999")}
    assert _choose(same, _receipt("p:4660", "p:1234", "4917999999")) == "gw-p:1234"
