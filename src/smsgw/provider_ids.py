"""One canonical key for a provider's message id, whatever quirk it has.

Many SMSCs answer ``submit_sm_resp`` with one spelling of the id and send the
receipt with another: hex in the response and decimal in the receipt, a lost
leading zero, upper- vs lower-case hex. Each provider row says how it writes
ids in each place (``submit_id_format``, ``receipt_id_format``); both sides
are normalised here so that the pairing key is equal when the id is.

Formats:

- ``hex``: a hexadecimal number (``0x`` allowed, any case) -> its decimal
  string without leading zeros.
- ``dec``: a decimal number -> decimal string without leading zeros.
- ``str``: an opaque id -> stripped of surrounding whitespace, case kept.

An id that does not fit its declared format raises ``ValueError`` naming the
format: that is a provider misconfiguration the caller should count and log,
not something to guess around.
"""

from __future__ import annotations

import re
from typing import Final

FORMATS: Final = ("hex", "dec", "str")
# SMPP message_id is a C-string of at most 65 octets; leave room for receipts
# that carry ids in the text, but refuse absurd input before int() sees it.
MAX_ID_LEN: Final = 128

_HEX = re.compile(r"(?:0[xX])?([0-9A-Fa-f]+)")
_DEC = re.compile(r"[0-9]+")


def normalize(raw: str, fmt: str) -> str:
    """The canonical spelling of provider message id ``raw`` written in ``fmt``."""
    value = raw.strip()
    if not value:
        raise ValueError("empty provider message id")
    if len(value) > MAX_ID_LEN:
        raise ValueError(f"provider message id longer than {MAX_ID_LEN} characters")
    if fmt == "str":
        return value
    if fmt == "hex":
        m = _HEX.fullmatch(value)
        if m is None:
            raise ValueError(f"message id {value!r} is not hex (id format 'hex')")
        return str(int(m.group(1), 16))
    if fmt == "dec":
        if _DEC.fullmatch(value) is None:
            raise ValueError(f"message id {value!r} is not decimal (id format 'dec')")
        # Strip zeros instead of int(): same result, no digit-count limit.
        return value.lstrip("0") or "0"
    raise ValueError(f"unknown id format {fmt!r}; use one of {', '.join(FORMATS)}")


def receipt_key(provider: str, raw_id: str, fmt: str) -> str:
    """Kafka key pairing a submit with its receipt: ``<provider>:<canonical id>``."""
    return f"{provider}:{normalize(raw_id, fmt)}"


def receipt_keys(
    provider: str,
    tlv_id: str | None,
    text_id: str | None,
    submit_fmt: str,
    receipt_fmt: str,
) -> tuple[str, str | None]:
    """The pairing key of a receipt, and the other candidate when its two ids disagree.

    The ``receipted_message_id`` TLV carries the id of the ``submit_sm_resp``
    (SMPP 3.4 §5.3.2.12), so it is read in the *submit* format; the ``id:`` of
    the text (Appendix B, vendor-specific) in the *receipt* format. The TLV's
    key comes first; the text's, when different, is only an alternative, which
    the correlator takes for a message to the same handset alone (many SMSCs
    put the receipt-format id in the TLV too, against §5.3.2.12). Raises
    ValueError when no id fits its format.
    """
    keys: list[str] = []
    errors: list[str] = []
    for raw, fmt in ((tlv_id, submit_fmt), (text_id, receipt_fmt)):
        if not raw:
            continue
        try:
            key = receipt_key(provider, raw, fmt)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if key not in keys:
            keys.append(key)
    if not keys:
        raise ValueError("; ".join(errors) or "receipt without a message id")
    return keys[0], (keys[1] if len(keys) > 1 else None)
