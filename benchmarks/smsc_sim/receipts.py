"""Message ids and delivery receipts in the shape real SMSCs put on the wire.

Ids start at 0xA0000000 so the hex form always holds a letter and the
decimal form has the 10 digits of SMPP Appendix B: a gateway that mixes the
two forms (a classic provider quirk) fails visibly instead of by luck.
"""

from __future__ import annotations

import time

from benchmarks.smsc_sim.config import OUTCOMES, IdFormat
from smsgw.smpp.pdu import FieldValue, Tlv

FIRST_ID = 0xA0000000
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_MESSAGE_STATE = 0x0427
TAG_MESSAGE_PAYLOAD = 0x0424
ESM_RECEIPT = 0x04
ESM_UDHI = 0x40
GSM_NETWORK = 3  # network_error_code type octet: GSM


def format_id(number: int, fmt: IdFormat) -> str:
    return f"{number:X}" if fmt == "hex" else f"{number:010d}"


class _MinuteClock:
    """YYMMDDhhmm of wall time, formatted once per minute (strftime is slow)."""

    def __init__(self) -> None:
        self._minute = -1
        self._text = ""

    def now(self) -> str:
        wall = time.time()
        minute = int(wall // 60)
        if minute != self._minute:
            self._minute = minute
            self._text = time.strftime("%y%m%d%H%M", time.localtime(wall))
        return self._text


_clock = _MinuteClock()


def preview(short_message: bytes, esm_class: int, data_coding: int) -> bytes:
    """First 20 characters for `text:`; printable ASCII only, as most SMSCs do."""
    if esm_class & ESM_UDHI and short_message:
        short_message = short_message[1 + short_message[0] :]
    if data_coding == 8:
        text = short_message.decode("utf-16-be", "replace")
    else:
        text = short_message.decode("latin-1")
    return "".join(c if " " <= c <= "~" else "?" for c in text[:20]).encode("ascii")


def receipt_fields(
    *,
    receipt_id: str,
    stat: str,
    submit_date: str,
    source: bytes,
    dest: bytes,
    text: bytes,
    with_tlvs: bool,
    tlv_id: str | None = None,
) -> tuple[dict[str, FieldValue], tuple[Tlv, ...]]:
    """deliver_sm fields and TLVs of an Appendix B receipt (addresses swapped)."""
    state, err = OUTCOMES[stat]
    dlvrd = b"001" if stat == "DELIVRD" else b"000"
    body = b"id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%03d text:%s" % (
        receipt_id.encode("ascii"),
        dlvrd,
        submit_date.encode("ascii"),
        _clock.now().encode("ascii"),
        stat.encode("ascii"),
        err,
        text,
    )
    fields: dict[str, FieldValue] = {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": dest,
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": source,
        "esm_class": ESM_RECEIPT,
        "data_coding": 0,
        "short_message": body,
    }
    tlvs: tuple[Tlv, ...] = ()
    if with_tlvs:
        tlvs = (
            (TAG_RECEIPTED_MESSAGE_ID, (tlv_id or receipt_id).encode("ascii") + b"\0"),
            (TAG_MESSAGE_STATE, bytes([state])),
            (TAG_NETWORK_ERROR_CODE, bytes([GSM_NETWORK]) + err.to_bytes(2, "big")),
        )
    return fields, tlvs


def submit_date() -> str:
    return _clock.now()
