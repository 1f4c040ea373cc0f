"""Hand-written body walker: field specs, TLVs, and the commands smpplib lacks.

Why this exists next to smpplib (which `codec` uses for everything it has):
- smpplib 2.2 has no class for submit_multi(_resp), cancel_sm(_resp),
  replace_sm(_resp) or outbind (`command.factory` raises), so their bodies
  are described here as data (`EXTRA_SPECS`) and walked by the same code;
- smpplib's parser is lax: a body that ends early silently leaves fields
  None and a C-string without NUL reads garbage, so every body is first
  walked here to *validate* it and find where the mandatory part ends;
- smpplib's TLV handling cannot be used on customer input: it ignores the
  TLV length for integer TLVs (and has wrong sizes, e.g. source_addr_subunit
  = 2 octets), raises KeyError for TLVs not listed for that command, drops
  unknown ones, reorders on output and never emits flag TLVs. TLVs are kept
  raw, in wire order, which also makes encode(decode(x)) == x.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Literal

from smsgw.smpp.pdu import (
    DecodeError,
    DestAddress,
    EncodeError,
    FieldValue,
    Tlv,
    UnsuccessSme,
)
from smsgw.smpp.status import CommandStatus as S

Kind = Literal["int", "cstr", "ostr", "dests", "unsuccess"]
# (name, kind, arg): int -> size in octets; cstr -> max length incl. NUL;
# ostr -> name of the length field; dests/unsuccess -> name of the count field.
FieldSpec = tuple[str, Kind, int | str]

_SOURCE: tuple[FieldSpec, ...] = (
    ("source_addr_ton", "int", 1),
    ("source_addr_npi", "int", 1),
    ("source_addr", "cstr", 21),
)

EXTRA_SPECS: dict[str, tuple[FieldSpec, ...]] = {
    "submit_multi": (
        ("service_type", "cstr", 6),
        *_SOURCE,
        ("number_of_dests", "int", 1),
        ("dest_addresses", "dests", "number_of_dests"),
        ("esm_class", "int", 1),
        ("protocol_id", "int", 1),
        ("priority_flag", "int", 1),
        ("schedule_delivery_time", "cstr", 17),
        ("validity_period", "cstr", 17),
        ("registered_delivery", "int", 1),
        ("replace_if_present_flag", "int", 1),
        ("data_coding", "int", 1),
        ("sm_default_msg_id", "int", 1),
        ("sm_length", "int", 1),
        ("short_message", "ostr", "sm_length"),
    ),
    "submit_multi_resp": (
        ("message_id", "cstr", 65),
        ("no_unsuccess", "int", 1),
        ("unsuccess_smes", "unsuccess", "no_unsuccess"),
    ),
    "cancel_sm": (
        ("service_type", "cstr", 6),
        ("message_id", "cstr", 65),
        *_SOURCE,
        ("dest_addr_ton", "int", 1),
        ("dest_addr_npi", "int", 1),
        ("destination_addr", "cstr", 21),
    ),
    "cancel_sm_resp": (),
    "replace_sm": (
        ("message_id", "cstr", 65),
        *_SOURCE,
        ("schedule_delivery_time", "cstr", 17),
        ("validity_period", "cstr", 17),
        ("registered_delivery", "int", 1),
        ("sm_default_msg_id", "int", 1),
        ("sm_length", "int", 1),
        ("short_message", "ostr", "sm_length"),
    ),
    "replace_sm_resp": (),
    "outbind": (("system_id", "cstr", 16), ("password", "cstr", 9)),
}

# Spec sizes of fixed-length TLVs we rely on; a mismatch is ESME_RINVPARLEN.
FIXED_TLV_SIZES: dict[int, int] = {
    0x0204: 2,  # user_message_reference
    0x020A: 2,  # source_port
    0x020B: 2,  # destination_port
    0x020C: 2,  # sar_msg_ref_num
    0x020E: 1,  # sar_total_segments
    0x020F: 1,  # sar_segment_seqnum
    0x0210: 1,  # sc_interface_version
    0x0019: 1,  # payload_type
    0x0426: 1,  # more_messages_to_send
    0x0427: 1,  # message_state
}


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.body) - self.pos

    def take(self, n: int, status: S, what: str) -> bytes:
        if n > self.left:
            raise DecodeError(status, f"{what}: needs {n} octets, {self.left} left")
        chunk = self.body[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, S.ESME_RINVCMDLEN, what), "big")

    def cstr(self, what: str) -> bytes:
        end = self.body.find(b"\0", self.pos)
        if end < 0:
            raise DecodeError(S.ESME_RINVCMDLEN, f"{what}: C-string without NUL")
        value = self.body[self.pos : end]
        self.pos = end + 1
        return value


def walk_mandatory(
    spec: Iterable[FieldSpec], body: bytes, *, allow_short: bool
) -> tuple[dict[str, FieldValue], int]:
    """Validate and read the mandatory part; returns (fields, end offset).

    `allow_short` lets a body stop at a field boundary (lenient for responses,
    e.g. deliver_sm_resp sent with no message_id at all).
    """
    r = _Reader(body)
    fields: dict[str, FieldValue] = {}
    for name, kind, arg in spec:
        if allow_short and r.left == 0:
            break
        if kind == "int":
            assert isinstance(arg, int)
            fields[name] = r.uint(arg, name)
        elif kind == "cstr":
            fields[name] = r.cstr(name)
        elif kind == "ostr":
            length = fields.get(str(arg), 0)
            assert isinstance(length, int)
            fields[name] = r.take(length, S.ESME_RINVMSGLEN, name)
        elif kind == "dests":
            fields[name] = tuple(_read_dest(r) for _ in range(_count(fields, arg)))
        else:
            fields[name] = tuple(_read_unsuccess(r) for _ in range(_count(fields, arg)))
    return fields, r.pos


def _count(fields: Mapping[str, FieldValue], arg: int | str) -> int:
    value = fields.get(str(arg), 0)
    return value if isinstance(value, int) else 0


def _read_dest(r: _Reader) -> DestAddress:
    flag = r.uint(1, "dest_flag")
    if flag == 1:
        ton, npi = r.uint(1, "dest_addr_ton"), r.uint(1, "dest_addr_npi")
        return DestAddress(r.cstr("destination_addr"), ton, npi, 1)
    if flag == 2:
        return DestAddress(r.cstr("dl_name"), 0, 0, 2)
    raise DecodeError(S.ESME_RINVDESTFLAG, f"dest_flag {flag}")


def _read_unsuccess(r: _Reader) -> UnsuccessSme:
    ton, npi = r.uint(1, "dest_addr_ton"), r.uint(1, "dest_addr_npi")
    addr = r.cstr("destination_addr")
    return UnsuccessSme(addr, ton, npi, r.uint(4, "error_status_code"))


def walk_tlvs(data: bytes) -> tuple[Tlv, ...]:
    """Split the optional part into raw (tag, value) pairs, in wire order."""
    r = _Reader(data)
    out: list[Tlv] = []
    while r.left:
        if r.left < 4:
            raise DecodeError(S.ESME_RINVOPTPARSTREAM, "truncated TLV header")
        tag, length = struct.unpack(">HH", r.take(4, S.ESME_RINVOPTPARSTREAM, "tlv"))
        value = r.take(length, S.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04X}")
        size = FIXED_TLV_SIZES.get(tag)
        if size is not None and length != size:
            raise DecodeError(S.ESME_RINVPARLEN, f"TLV 0x{tag:04X} length {length} != {size}")
        out.append((tag, value))
    return tuple(out)


def pack_tlvs(tlvs: Iterable[Tlv]) -> bytes:
    out = bytearray()
    for tag, value in tlvs:
        if not 0 <= tag <= 0xFFFF or len(value) > 0xFFFF:
            raise EncodeError(f"bad TLV 0x{tag:X} ({len(value)} octets)")
        out += struct.pack(">HH", tag, len(value)) + value
    return bytes(out)


def as_bytes(value: FieldValue | None) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, bytes):
        return value
    raise EncodeError(f"expected bytes, got {type(value).__name__}")


def _cstr(value: FieldValue | None, max_len: int, name: str) -> bytes:
    raw = as_bytes(value)
    if b"\0" in raw or len(raw) >= max_len:
        raise EncodeError(f"{name}: {len(raw)} octets does not fit C-string({max_len})")
    return raw + b"\0"


def _uint(value: FieldValue | None, size: int, name: str) -> bytes:
    number = 0 if value is None else value
    if not isinstance(number, int) or not 0 <= number < 1 << (8 * size):
        raise EncodeError(f"{name}: {number!r} is not a {size}-octet integer")
    return number.to_bytes(size, "big")


def encode_mandatory(spec: Iterable[FieldSpec], fields: Mapping[str, FieldValue]) -> bytes:
    """Inverse of walk_mandatory; length and count fields are recomputed."""
    derived = dict(fields)
    for name, kind, arg in spec:
        if kind in ("ostr", "dests", "unsuccess"):
            value = fields.get(name)
            derived[str(arg)] = len(value) if isinstance(value, bytes | str | tuple) else 0
    out = bytearray()
    for name, kind, arg in spec:
        value = derived.get(name)
        if kind == "int":
            assert isinstance(arg, int)
            out += _uint(value, arg, name)
        elif kind == "cstr":
            assert isinstance(arg, int)
            out += _cstr(value, arg, name)
        elif kind == "ostr":
            out += as_bytes(value)
        elif kind == "dests":
            for d in value if isinstance(value, tuple) else ():
                assert isinstance(d, DestAddress)
                if d.flag == 1:
                    out += bytes([1]) + _uint(d.ton, 1, name) + _uint(d.npi, 1, name)
                    out += _cstr(d.address, 21, name)
                else:
                    out += bytes([2]) + _cstr(d.address, 21, name)
        else:
            for u in value if isinstance(value, tuple) else ():
                assert isinstance(u, UnsuccessSme)
                out += _uint(u.ton, 1, name) + _uint(u.npi, 1, name)
                out += _cstr(u.address, 21, name) + _uint(u.error_status, 4, name)
    return bytes(out)
