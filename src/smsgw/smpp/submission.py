"""Validate a customer's submit and turn it into what the gateway needs.

`parse_submission` is pure: Pdu in, `Submission` or `Rejection` out. The
original octets (short_message, message_payload, UDH) travel unchanged; the
decoded `text` is for routing, billing and logs only.

Status choices (SMPP 3.4 leaves some to the implementer):
- short_message together with message_payload: ESME_RINVMSGLEN, because
  the rule reads "sm_length must be 0 when message_payload is used";
- UDHI set but UDHL/IEs overrun the message, or a bad concatenation IE:
  ESME_RINVMSGLEN (the user data is malformed, esm_class itself is legal);
- SAR TLVs: some but not all three -> ESME_RMISSINGOPTPARAM, impossible
  values -> ESME_RINVOPTPARAMVAL; a UDH concatenation IE wins over SAR;
- esm_class message type bits (0x3C) other than 0 (receipts, ESME acks) and
  forward/transaction mode (0x02, which needs the final outcome in the
  response) -> ESME_RINVESMCLASS: we ack after Kafka, store-and-forward;
- distribution-list destinations in submit_multi -> ESME_RCNTSUBDL
  ("cannot submit to distribution list"): the name may be fine, we just
  do not have DLs;
- data_coding reserved by SMPP 3.4 (0x0B, 0x0C, 0x0F-0xBF) -> ESME_RINVDCS
  (0x104, SMPP 5.0; 3.4 has no such code);
- a body that does not decode in its declared alphabet (e.g. GSM octets
  > 0x7F, odd-length UCS2) is *accepted* with text=None: many SMSCs pass
  such bodies on, and refusing would break customers that mislabel data.

Whatever is accepted must encode in the submit_sm the provider bind sends
(invariant 9), whichever command it came in: so every field is held to the
*submit_sm* limits (SMPP 3.4 §4.4.1), not the incoming command's. data_sm
allows 64-character addresses, submit_sm 20; a longer one is refused here
rather than accepted and then unsendable. TLVs: a known TLV with a length
other than §5.3.2's is ESME_RINVPARLEN (0xC2), an impossible value
ESME_RINVOPTPARAMVAL (0xC4); only TLVs submit_sm defines (and vendor-specific
ones, 0x1400-0x3FFF) are forwarded, the rest are ignored as §3.2.4 allows.
tests/unit/test_smpp_submission.py proves (a property test) that every
accepted submission encodes through the provider's encoder.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Final

import gsm0338  # type: ignore[import-untyped]  # registers the "gsm03.38" codec

from smsgw.smpp.pdu import Pdu
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.udh import Concat, UdhError, concat_info, parse_udh, split_udh

assert gsm0338  # imported for its codec registration side effect

TAG_MESSAGE_PAYLOAD: Final = 0x0424
TAG_SAR_REF: Final = 0x020C
TAG_SAR_TOTAL: Final = 0x020E
TAG_SAR_SEQ: Final = 0x020F
_SAR = (TAG_SAR_REF, TAG_SAR_TOTAL, TAG_SAR_SEQ)

VALID_TON = frozenset(range(7))
VALID_NPI = frozenset({0, 1, 3, 4, 6, 8, 9, 10, 14, 18})
TON_INTERNATIONAL, TON_ALPHANUMERIC, NPI_ISDN = 1, 5, 1
# C-Octet max - NUL of the submit_sm we send the provider (§4.4.1), for every
# incoming command: a data_sm address may be 64, but it leaves as submit_sm.
MAX_ADDR = {"submit_sm": 20, "submit_multi": 20, "data_sm": 20}
MAX_SERVICE_TYPE = 5  # §5.2.11: C-Octet String of max 6 incl. NUL
MAX_SHORT_MESSAGE = 254
MAX_DESTS = 254
# §7.1.1: YYMMDDhhmmss t nn p, 16 characters (17 with the NUL).
_TIME = re.compile(rb"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)\d(\d\d)([+\-R])")

# §5.3.2 value lengths: tag -> (min, max) octets. Listed: every TLV submit_sm
# may carry (§4.4.1) plus data_sm's, so a wrong length is caught whichever it is.
TLV_LENGTHS: Final[dict[int, tuple[int, int]]] = {
    0x0005: (1, 1),  # dest_addr_subunit
    0x0006: (1, 1),  # dest_network_type
    0x0007: (1, 1),  # dest_bearer_type
    0x0008: (2, 2),  # dest_telematics_id
    0x000D: (1, 1),  # source_addr_subunit
    0x000E: (1, 1),  # source_network_type
    0x000F: (1, 1),  # source_bearer_type
    0x0010: (1, 1),  # source_telematics_id
    0x0017: (4, 4),  # qos_time_to_live
    0x0019: (1, 1),  # payload_type
    0x0030: (1, 1),  # ms_msg_wait_facilities
    0x0201: (1, 1),  # privacy_indicator
    0x0202: (2, 23),  # source_subaddress
    0x0203: (2, 23),  # dest_subaddress
    0x0204: (2, 2),  # user_message_reference
    0x0205: (1, 1),  # user_response_code
    0x020A: (2, 2),  # source_port
    0x020B: (2, 2),  # destination_port
    0x020C: (2, 2),  # sar_msg_ref_num
    0x020D: (1, 1),  # language_indicator
    0x020E: (1, 1),  # sar_total_segments
    0x020F: (1, 1),  # sar_segment_seqnum
    0x0302: (1, 1),  # callback_num_pres_ind
    0x0303: (0, 65),  # callback_num_atag
    0x0304: (1, 1),  # number_of_messages
    0x0381: (4, 19),  # callback_num
    0x0421: (1, 1),  # set_dpf
    0x0424: (0, 0xFFFF),  # message_payload
    0x0426: (1, 1),  # more_messages_to_send
    0x0501: (1, 1),  # ussd_service_op
    0x1201: (1, 1),  # display_time
    0x1203: (2, 2),  # sms_signal
    0x1204: (1, 1),  # ms_validity
    0x130C: (0, 0),  # alert_on_message_delivery
    0x1380: (1, 1),  # its_reply_type
    0x1383: (2, 2),  # its_session_info
}
# §4.4.1: the optional parameters of submit_sm, what we may forward.
SUBMIT_SM_TLVS: Final = frozenset(
    {
        0x0204, 0x020A, 0x000D, 0x020B, 0x0005, 0x020C, 0x020E, 0x020F, 0x0426, 0x0019,
        0x0424, 0x0201, 0x0381, 0x0302, 0x0303, 0x0202, 0x0203, 0x0205, 0x1201, 0x1203,
        0x1204, 0x0030, 0x0304, 0x130C, 0x020D, 0x1380, 0x1383, 0x0501,
    }
)  # fmt: skip
VENDOR_TLVS: Final = range(0x1400, 0x4000)  # §5.3.2: vendor-specific, forwarded as they are
# One-octet TLVs whose values §5.3.2 enumerates: tag -> largest defined value.
TLV_MAX_VALUE: Final[dict[int, int]] = {
    0x0019: 1,  # payload_type: 0 WDP, 1 WCMP
    0x0201: 3,  # privacy_indicator
    0x0302: 0x0F,  # callback_num_pres_ind: bits 0-3 used
    0x0426: 1,  # more_messages_to_send
    0x1201: 2,  # display_time
    0x1204: 3,  # ms_validity
    0x1380: 8,  # its_reply_type
}


@dataclass(frozen=True, slots=True)
class Address:
    addr: str
    ton: int
    npi: int


@dataclass(frozen=True, slots=True)
class Rejection:
    status: S
    reason: str


@dataclass(frozen=True)
class Submission:
    """A validated submit_sm / data_sm / submit_multi."""

    command: str
    service_type: str
    source: Address
    destinations: tuple[Address, ...]
    esm_class: int
    protocol_id: int
    priority_flag: int
    schedule_delivery_time: str
    validity_period: str
    registered_delivery: int
    replace_if_present: int
    data_coding: int
    sm_default_msg_id: int
    short_message: bytes
    message_payload: bytes | None
    udh: bytes | None  # including its UDHL octet
    concat: Concat | None
    text: str | None
    tlvs: dict[int, bytes] = field(default_factory=dict)  # all but payload and SAR

    @property
    def user_data(self) -> bytes:
        """The octets that are the message: payload if present, else short_message."""
        return self.message_payload if self.message_payload is not None else self.short_message

    @property
    def wants_receipt(self) -> bool:
        return self.registered_delivery & 0x03 in (1, 2)


class _Reject(Exception):
    def __init__(self, status: S, reason: str) -> None:
        super().__init__(reason)
        self.rejection = Rejection(status, reason)


def parse_submission(command: str, pdu: Pdu) -> Submission | Rejection:
    """Validate `pdu` (a decoded submit_sm / data_sm / submit_multi)."""
    try:
        return _parse(command, pdu)
    except _Reject as exc:
        return exc.rejection


def _parse(command: str, pdu: Pdu) -> Submission:
    if command not in MAX_ADDR:
        raise _Reject(S.ESME_RINVCMDID, f"{command} is not a submission")
    max_addr = MAX_ADDR[command]
    service_type = pdu.get_bytes("service_type")
    if len(service_type) > MAX_SERVICE_TYPE:
        raise _Reject(S.ESME_RINVSERTYP, f"service_type of {len(service_type)} characters")
    source = _address(
        pdu, "source_addr", "source_addr_ton", "source_addr_npi", max_addr, is_source=True
    )
    destinations = _destinations(command, pdu, max_addr)
    esm_class = pdu.get_int("esm_class")
    if esm_class & 0x3C:
        raise _Reject(S.ESME_RINVESMCLASS, f"esm_class message type 0x{esm_class & 0x3C:02X}")
    if esm_class & 0x03 == 0x02:
        raise _Reject(S.ESME_RINVESMCLASS, "forward (transaction) mode is not supported")
    registered_delivery = pdu.get_int("registered_delivery")
    if registered_delivery & 0xE0 or registered_delivery & 0x03 == 0x03:
        raise _Reject(S.ESME_RINVREGDLVFLG, f"registered_delivery 0x{registered_delivery:02X}")
    priority = pdu.get_int("priority_flag")
    if priority > 3:
        raise _Reject(S.ESME_RINVPRTFLG, f"priority_flag {priority}")
    replace = pdu.get_int("replace_if_present_flag")
    if replace > 1:
        raise _Reject(S.ESME_RINVREPFLAG, f"replace_if_present_flag {replace}")
    schedule = _time(pdu, "schedule_delivery_time", S.ESME_RINVSCHED)
    validity = _time(pdu, "validity_period", S.ESME_RINVEXPIRY)
    data_coding = pdu.get_int("data_coding")
    alphabet = _alphabet(data_coding)

    tlvs = _tlvs(pdu)
    short_message = pdu.get_bytes("short_message")
    payload = pdu.tlv(TAG_MESSAGE_PAYLOAD)
    if len(short_message) > MAX_SHORT_MESSAGE:
        raise _Reject(S.ESME_RINVMSGLEN, f"short_message of {len(short_message)} octets")
    if payload is not None and short_message:
        raise _Reject(S.ESME_RINVMSGLEN, "short_message and message_payload both present")
    user_data = payload if payload is not None else short_message

    udh, body, concat = None, user_data, None
    if esm_class & 0x40:
        try:
            udh, body = split_udh(user_data)
            concat = concat_info(parse_udh(udh))
        except UdhError as exc:
            raise _Reject(S.ESME_RINVMSGLEN, str(exc)) from None
        if concat is not None and not concat.valid:
            raise _Reject(S.ESME_RINVMSGLEN, f"concatenation {concat}")
    sar = _sar(pdu)
    if concat is None:
        concat = sar

    return Submission(
        command=command,
        service_type=service_type.decode("latin-1"),
        source=source,
        destinations=destinations,
        esm_class=esm_class,
        protocol_id=pdu.get_int("protocol_id"),
        priority_flag=priority,
        schedule_delivery_time=schedule,
        validity_period=validity,
        registered_delivery=registered_delivery,
        replace_if_present=replace,
        data_coding=data_coding,
        sm_default_msg_id=pdu.get_int("sm_default_msg_id"),
        short_message=short_message,
        message_payload=payload,
        udh=udh,
        concat=concat,
        text=decode_text(body, alphabet),
        tlvs=tlvs,
    )


def _address(
    pdu: Pdu, addr_field: str, ton_field: str, npi_field: str, max_len: int, *, is_source: bool
) -> Address:
    raw, ton, npi = pdu.get_bytes(addr_field), pdu.get_int(ton_field), pdu.get_int(npi_field)
    return _check_address(raw, ton, npi, max_len, is_source)


def _check_address(raw: bytes, ton: int, npi: int, max_len: int, is_source: bool) -> Address:
    bad_addr = S.ESME_RINVSRCADR if is_source else S.ESME_RINVDSTADR
    bad_ton = S.ESME_RINVSRCTON if is_source else S.ESME_RINVDSTTON
    bad_npi = S.ESME_RINVSRCNPI if is_source else S.ESME_RINVDSTNPI
    what = "source" if is_source else "destination"
    if not raw or len(raw) > max_len:
        raise _Reject(bad_addr, f"{what} address of {len(raw)} characters")
    if ton not in VALID_TON or (not is_source and ton == TON_ALPHANUMERIC):
        raise _Reject(bad_ton, f"{what} TON {ton}")
    if npi not in VALID_NPI:
        raise _Reject(bad_npi, f"{what} NPI {npi}")
    try:
        addr = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _Reject(bad_addr, f"{what} address is not ASCII") from None
    if not addr.isprintable():
        raise _Reject(bad_addr, f"{what} address has control characters")
    numeric = ton == TON_INTERNATIONAL or (npi == NPI_ISDN and ton != TON_ALPHANUMERIC)
    if numeric and not addr.removeprefix("+").isdigit():
        raise _Reject(bad_addr, f"{what} address {addr!r} is not numeric")
    return Address(addr, ton, npi)


def _destinations(command: str, pdu: Pdu, max_len: int) -> tuple[Address, ...]:
    if command != "submit_multi":
        return (
            _address(
                pdu, "destination_addr", "dest_addr_ton", "dest_addr_npi", max_len, is_source=False
            ),
        )
    dests = pdu.dests()
    if not 1 <= len(dests) <= MAX_DESTS:
        raise _Reject(S.ESME_RINVNUMDESTS, f"{len(dests)} destinations")
    out: list[Address] = []
    for dest in dests:
        if dest.flag != 1:
            raise _Reject(S.ESME_RCNTSUBDL, "distribution lists are not supported")
        out.append(_check_address(dest.address, dest.ton, dest.npi, max_len, False))
    return tuple(out)


def _time(pdu: Pdu, name: str, status: S) -> str:
    """§7.1.1: empty, absolute (a real date, UTC offset nn <= 48 quarter hours) or relative."""
    raw = pdu.get_bytes(name)
    if not raw:
        return ""
    match = _TIME.fullmatch(raw)
    if match is None:
        raise _Reject(status, f"{name} {raw!r} is not YYMMDDhhmmsstnnp")
    yy, mo, dd, hh, mi, ss, nn = (int(g) for g in match.groups()[:7])
    if match.group(8) != b"R":
        try:
            datetime.datetime(2000 + yy, mo, dd, hh, mi, ss)
        except ValueError:
            raise _Reject(status, f"{name} {raw!r} is not a date") from None
        if nn > 48:
            raise _Reject(status, f"{name} {raw!r}: UTC offset over 12 hours")
    return raw.decode("ascii")


def _tlvs(pdu: Pdu) -> dict[int, bytes]:
    """Check every TLV against §5.3.2; return those to forward (not payload/SAR)."""
    out: dict[int, bytes] = {}
    for tag, value in pdu.tlvs:
        limits = TLV_LENGTHS.get(tag)
        if limits is not None and not limits[0] <= len(value) <= limits[1]:
            raise _Reject(S.ESME_RINVPARLEN, f"TLV 0x{tag:04X} of {len(value)} octets")
        top = TLV_MAX_VALUE.get(tag)
        if top is not None and value[0] > top:
            raise _Reject(S.ESME_RINVOPTPARAMVAL, f"TLV 0x{tag:04X} value {value[0]}")
        if tag in (TAG_MESSAGE_PAYLOAD, *_SAR):
            continue
        if tag in SUBMIT_SM_TLVS or tag in VENDOR_TLVS:
            out.setdefault(tag, value)
    return out


def _sar(pdu: Pdu) -> Concat | None:
    values = [pdu.tlv(tag) for tag in _SAR]
    present = [v for v in values if v is not None]
    if not present:
        return None
    if len(present) != len(_SAR):
        raise _Reject(S.ESME_RMISSINGOPTPARAM, "incomplete SAR TLVs")
    ref, total, seq = (int.from_bytes(v, "big") for v in present)
    concat = Concat(ref, total, seq, 16, "sar")
    if not concat.valid:
        raise _Reject(S.ESME_RINVOPTPARAMVAL, f"SAR segment {seq} of {total}")
    return concat


def _alphabet(dcs: int) -> str | None:
    """Codec name for data_coding `dcs`; None for binary/unsupported text."""
    if dcs in (0x0B, 0x0C) or 0x0F <= dcs <= 0xBF:
        raise _Reject(S.ESME_RINVDCS, f"reserved data_coding 0x{dcs:02X}")
    if dcs >= 0xF0:  # GSM message class group: bit 2 selects 8-bit data
        return None if dcs & 0x04 else "gsm03.38"
    if dcs >= 0xE0:  # MWI group, UCS2
        return "utf-16-be"
    if dcs >= 0xC0:  # MWI group, GSM 7-bit
        return "gsm03.38"
    return {
        0: "gsm03.38",
        1: "ascii",
        3: "latin-1",
        6: "iso8859-5",
        7: "iso8859-8",
        8: "utf-16-be",
    }.get(dcs)


def decode_text(body: bytes, alphabet: str | None) -> str | None:
    """Text of `body` (unpacked septets for GSM), None if binary or undecodable."""
    if alphabet is None:
        return None
    if alphabet == "gsm03.38" and (len(body) - len(body.rstrip(b"\x1b"))) % 2:
        return None  # gsm0338 silently drops a dangling escape
    try:
        return body.decode(alphabet)
    except UnicodeDecodeError:
        return None
