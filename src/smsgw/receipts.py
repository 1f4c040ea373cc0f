"""Delivery receipts: reading the provider's, writing the customer's.

Providers put the receipt in the text (SMPP 3.4 Appendix B, vendor-specific
but universal) and, often, in TLVs. The TLVs win where both exist (what
Kannel does too). Customers get the same shape back with the gateway's id,
in the text and in ``receipted_message_id``, so that any client can match it.

Receipts the gateway makes itself carry these ``err`` codes (documented in
the README):
  901  no route for the destination
  902  refused by the provider (its command_status is in network_error_code)
  903  expired in the gateway before the provider accepted it
  904  multipart message incomplete when its assembly time ran out
  905  copies of multipart parts already sent, expired unmatched (not sent twice)
  906  sent to the provider that many times without an answer (connection lost,
       response timeout: outcome unknown); failed alone so the queue flows
  907  cannot be sent to this provider: bigger than its maximum PDU size, or
       its submit_sm does not encode
  908  its provider was removed while it was queued (`provider remove --drain fail`)
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass

import gsm0338  # type: ignore[import-untyped]  # registers the "gsm03.38" codec

from smsgw.message import AcceptedMessage
from smsgw.records import Delivery
from smsgw.smpp.udh import UdhError, split_udh
from smsgw.state import MessageState

assert gsm0338  # imported for its codec registration side effect

TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427
TAG_NETWORK_ERROR_CODE = 0x0423

ERR_NO_ROUTE = 901
ERR_PROVIDER_REFUSED = 902
ERR_EXPIRED = 903
ERR_INCOMPLETE = 904
ERR_DUPLICATE_PART = 905
ERR_UNKNOWN_OUTCOME = 906
ERR_UNSENDABLE = 907
ERR_PROVIDER_REMOVED = 908

STAT_BY_STATE = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}
STATE_BY_STAT = {v: k for k, v in STAT_BY_STATE.items()}
STATE_BY_STAT.update(
    {
        "DELIVERED": MessageState.DELIVERED,
        "UNDELIVERABLE": MessageState.UNDELIVERABLE,
        "REJECTED": MessageState.REJECTED,
        "ACCEPTED": MessageState.ACCEPTED,
        "FAILED": MessageState.UNDELIVERABLE,
    }
)

_FIELD = re.compile(
    r"(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:\s*(.*?)(?=\s+(?:id|sub|dlvrd|"
    r"submit date|done date|stat|err|text)\s*:|$)",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class ProviderReceipt:
    """What a provider's receipt says, whatever form it came in."""

    message_id: str
    state: MessageState
    err: str
    submit_date: str
    done_date: str
    network_error: bytes | None
    text: str
    tlv_id: str | None = None  # receipted_message_id: the submit_sm_resp id (§5.3.2.12)
    text_id: str | None = None  # the text's ``id:`` (Appendix B)


def is_receipt(esm_class: int) -> bool:
    """Peers test the message-type bits: 0x04 SMSC delivery receipt (0x08/0x10/0x20 kin)."""
    return esm_class & 0x3C != 0


def _cstr(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.split(b"\0", 1)[0].decode("latin-1").strip() or None


def parse_receipt(short_message: bytes, tlvs: dict[int, bytes]) -> ProviderReceipt | None:
    """None when neither the text nor the TLVs name a message id."""
    text = short_message.decode("latin-1", "replace")
    fields = {m.group(1).lower(): m.group(2).strip() for m in _FIELD.finditer(text)}
    tlv_id, text_id = _cstr(tlvs.get(TAG_RECEIPTED_MESSAGE_ID)), fields.get("id") or None
    mid = tlv_id or text_id
    if not mid:
        return None
    state: MessageState | None = None
    raw_state = tlvs.get(TAG_MESSAGE_STATE)
    if raw_state:
        try:
            state = MessageState(raw_state[0])
        except ValueError:
            state = None
    if state is None:
        state = STATE_BY_STAT.get(fields.get("stat", "").upper(), MessageState.UNKNOWN)
    return ProviderReceipt(
        message_id=mid,
        state=state,
        err=fields.get("err", "000")[:3] or "000",
        submit_date=fields.get("submit date", ""),
        done_date=fields.get("done date", ""),
        network_error=tlvs.get(TAG_NETWORK_ERROR_CODE),
        text=fields.get("text", ""),
        tlv_id=tlv_id,
        text_id=text_id,
    )


TEXT_CHARS = 20  # Appendix B: "the first 20 characters of the short message"
ESM_UDHI = 0x40
RECEIPT_DATA_CODING = 0  # the gateway's receipts declare the default alphabet


def _text_codec(data_coding: int) -> str | None:
    """The codec of a message's text by its data_coding (SMPP 3.4 §5.2.19); None: binary.

    Never refuses (a receipt is owed whatever the message was): what is not text
    of a known alphabet gives an empty ``text:``.
    """
    if data_coding >= 0xF0:  # message class group: bit 2 selects 8-bit data
        return None if data_coding & 0x04 else "gsm03.38"
    if data_coding >= 0xE0:  # message waiting group, UCS2
        return "utf-16-be"
    if data_coding >= 0xC0:  # message waiting group, default alphabet
        return "gsm03.38"
    return {
        0: "gsm03.38",
        1: "ascii",
        3: "latin-1",
        6: "iso8859-5",
        7: "iso8859-8",
        8: "utf-16-be",
    }.get(data_coding)


def message_preview(user_data: bytes, data_coding: int, esm_class: int) -> str:
    """The receipt's ``text:``: the first 20 *characters* of the message (Appendix B).

    The UDH (esm_class UDHI) is skipped: it is header, not text, and holds the
    gateway's own concatenation reference. The rest is decoded by its
    data_coding, so a UCS2 or Latin-1 message gives characters, not octets.
    """
    body = user_data
    if esm_class & ESM_UDHI:
        try:
            _udh, body = split_udh(user_data)
        except UdhError:
            return ""
    codec = _text_codec(data_coding)
    if codec is None:
        return ""
    text = body.decode(codec, "replace")[:TEXT_CHARS]
    return "".join(c if c.isprintable() else " " for c in text)  # no line breaks in a receipt


def encode_receipt_text(text: str, data_coding: int = RECEIPT_DATA_CODING) -> bytes:
    """The receipt's text in what its data_coding declares; characters it lacks become '?'."""
    codec = _text_codec(data_coding) or "latin-1"
    return text.encode(codec, "replace")


def receipt_date(ts: float) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(ts))


def render_receipt_text(
    message_id: str,
    state: MessageState,
    err: str | int,
    *,
    submit_ts: float,
    done_ts: float,
    text: str = "",
) -> bytes:
    """Appendix B text with the gateway's id; ``text`` is the first 20 characters."""
    delivered = "001" if state is MessageState.DELIVERED else "000"
    err_s = f"{int(err):03d}" if isinstance(err, int) or str(err).isdigit() else str(err)[:3]
    body = (
        f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{receipt_date(submit_ts)} "
        f"done date:{receipt_date(done_ts)} stat:{STAT_BY_STATE[state]} err:{err_s} "
        f"text:{text[:TEXT_CHARS]}"
    )
    return encode_receipt_text(body)


def receipt_tlvs(
    message_id: str, state: MessageState, network_error: bytes | None
) -> list[tuple[int, bytes]]:
    tlvs = [
        (TAG_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\0"),
        (TAG_MESSAGE_STATE, bytes([int(state)])),
    ]
    if network_error:
        tlvs.append((TAG_NETWORK_ERROR_CODE, network_error))
    return tlvs


def network_error_for_status(status: int) -> bytes:
    """network_error_code TLV: type 3 (SMPP error) and the provider's command_status."""
    return struct.pack(">BH", 3, status & 0xFFFF)


def receipt_delivery_id(message_id: str, destination: str, state: MessageState) -> str:
    """The deliverer's once-only key for a receipt: one per *final* outcome.

    Every final state of a message to one destination shares the key, so the
    customer gets at most one final receipt even when an outcome is decided twice
    (a provider bind that dies after writing an outcome and before committing its
    offset decides the record again on replay; a provider that reports DELIVRD and
    then UNDELIV). The first one written wins, as in ``StateStore.apply``.
    Intermediate receipts (registered_delivery 0x10, SMPP 3.4 §5.2.17) keep a key
    per state.
    """
    tail = "final" if state.final else str(int(state))
    return f"r:{message_id}:{destination}:{tail}"


def customer_wants(registered_delivery: int, state: MessageState) -> bool:
    """registered_delivery bits 0-1: 1 final outcome, 2 failure only; 0x10 intermediate."""
    mode = registered_delivery & 0x03
    if not state.final:
        return bool(registered_delivery & 0x10)
    if mode == 1:
        return True
    if mode == 2:
        return state is not MessageState.DELIVERED
    return False


def failure_receipt(
    m: AcceptedMessage,
    state: MessageState,
    err: int,
    *,
    network_error: bytes | None = None,
    ttl_s: float = 72 * 3600,
) -> Delivery:
    """The receipt a customer gets for a message the gateway itself could not send.

    Here, below the stages, because the router, the provider binds and the provider
    drain all build it (esm_class 0x04 marks a delivery receipt, SMPP 3.4 §5.2.12;
    its text follows Appendix B).
    """
    now = time.time()
    text = message_preview(m.message_payload or m.short_message, m.data_coding, m.esm_class)
    return Delivery(
        id=receipt_delivery_id(m.id, m.destination.addr, state),
        kind="receipt",
        customer=m.customer,
        source=m.destination,  # a receipt comes "from" the handset
        destination=m.source,
        esm_class=0x04,
        data_coding=0,
        short_message=render_receipt_text(
            m.id, state, err, submit_ts=m.received_at, done_ts=now, text=text
        ),
        tlvs=tuple(receipt_tlvs(m.id, state, network_error)),
        created_at=now,
        expires_at=now + ttl_s,
        message_id=m.id,
        state=int(state),
        session=m.bind,
    )
