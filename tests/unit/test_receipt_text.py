"""The receipt's text: field (Appendix B, issue 12 item 4): the first 20 characters of the
message, UDH skipped, decoded by its data_coding, in the receipt's own alphabet."""

from smsgw.receipts import encode_receipt_text, message_preview, render_receipt_text
from smsgw.state import MessageState

UDHI = 0x40


def test_a_concatenated_part_gives_its_text_not_its_udh() -> None:
    udh = bytes([5, 0, 3, 0xA7, 2, 1])  # 8-bit reference 0xA7 (the gateway's), part 1 of 2
    assert message_preview(udh + b"Hello part one of two", 0, UDHI) == "Hello part one of tw"
    assert message_preview(bytes([9, 0, 3]), 0, UDHI) == ""  # a UDHL past the end: no text


def test_ucs2_with_an_emoji_counts_characters_not_octets() -> None:
    text = "Привет 😀 мир, как дела сегодня?"
    got = message_preview(text.encode("utf-16-be"), 8, 0)
    assert got == text[:20] and "😀" in got  # the surrogate pair is one character
    # In the receipt's default alphabet, the Cyrillic and the emoji are replaced.
    assert encode_receipt_text(got).startswith(b"?" * 6 + b" ?")


def test_latin1_is_decoded_and_re_encoded_in_gsm() -> None:
    text = "Grüße aus Köln, ça va bien?"
    got = message_preview(text.encode("latin-1"), 3, 0)
    assert got == text[:20]
    # ü ß ö exist in GSM 03.38 (one octet each); a lower-case ç does not (only Ç).
    assert encode_receipt_text(got) == got.replace("ç", "?").encode("gsm03.38")
    assert encode_receipt_text(got).count(b"?") == 1


def test_gsm_with_euro_keeps_the_escape() -> None:
    raw = "Price: 5€ today @home".encode("gsm03.38")
    assert b"\x1be" in raw
    got = message_preview(raw, 0, 0)
    assert got == "Price: 5€ today @hom"
    assert encode_receipt_text(got) == got.encode("gsm03.38")


def test_binary_and_control_characters() -> None:
    assert message_preview(b"\x00\x01\x02", 4, 0) == ""  # 8-bit data: no text
    assert message_preview(b"two\nlines", 1, 0) == "two lines"


def test_rendered_receipt_is_in_the_gsm_default_alphabet() -> None:
    body = render_receipt_text(
        "A1B2", MessageState.DELIVERED, 0, submit_ts=0, done_ts=60, text="5€ @home 😀"
    )
    assert body.startswith(b"id:A1B2 sub:001 dlvrd:001 ")
    assert body.endswith(b"text:5\x1be \x00home ?")
    assert body.decode("gsm03.38").endswith("text:5€ @home ?")
