"""Provider message ids pair up across the classic quirks."""

from __future__ import annotations

import pytest

from smsgw.provider_ids import normalize, receipt_key


def test_hex_in_resp_matches_decimal_in_receipt() -> None:
    # 0x1A2B3C == 1715004: the complaint that made receipts never match.
    assert normalize("1A2B3C", "hex") == normalize("1715004", "dec") == "1715004"
    assert receipt_key("acme", "1A2B3C", "hex") == receipt_key("acme", "1715004", "dec")


def test_lost_leading_zero() -> None:
    assert normalize("0012345", "dec") == normalize("12345", "dec") == "12345"
    assert normalize("00ff", "hex") == normalize("ff", "hex") == "255"


def test_upper_and_lower_hex_are_one_id() -> None:
    assert normalize("ABCDEF01", "hex") == normalize("abcdef01", "hex")
    assert normalize("0xAbC", "hex") == normalize("abc", "hex") == "2748"


def test_zero_stays_zero() -> None:
    assert normalize("000", "dec") == "0"
    assert normalize("0", "hex") == "0"


def test_str_keeps_case_and_zeros_but_strips_blanks() -> None:
    assert normalize("  0aB-7f \n", "str") == "0aB-7f"
    assert normalize("abc", "str") != normalize("ABC", "str")


def test_long_hex_id_uuid_size() -> None:
    raw = "0123456789abcdef0123456789ABCDEF"
    assert normalize(raw, "hex") == str(int(raw, 16))


def test_receipt_key_is_scoped_by_provider() -> None:
    assert receipt_key("a", "1", "dec") == "a:1"
    assert receipt_key("a", "1", "dec") != receipt_key("b", "1", "dec")


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        ("", "str"),
        ("   ", "dec"),
        ("12g", "hex"),
        ("0x", "hex"),
        ("1_000", "dec"),  # int() would accept this; we must not
        ("+12", "dec"),
        ("-12", "dec"),
        ("١٢٣", "dec"),  # Arabic-Indic digits: str.isdigit() says yes, we say no
        ("1a", "dec"),
        ("x" * 129, "str"),
        ("12", "base64"),
    ],
)
def test_bad_ids_raise_with_reason(raw: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        normalize(raw, fmt)
