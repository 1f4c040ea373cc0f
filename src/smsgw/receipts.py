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

from smsgw.state import MessageState

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
    mid = _cstr(tlvs.get(TAG_RECEIPTED_MESSAGE_ID)) or fields.get("id")
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
    )


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
        f"text:{text[:20]}"
    )
    return body.encode("latin-1", "replace")


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
