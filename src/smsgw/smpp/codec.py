"""Bytes <-> Pdu. The only module that imports python-smpplib.

smpplib (the library of record) encodes and decodes the mandatory body of
every command it has a class for. Around it, `wire` validates the body first
(smpplib's parser does not notice truncation), keeps TLVs raw, and covers the
commands smpplib lacks. smpplib quirks handled here:
- `make_pdu(..., sequence=n)` ignores `sequence` (the attribute already reads
  0 from the dummy client) and crashes without one (`default_client` has no
  `next_sequence`): we pass `client=None, sequence=n` and then set it again;
- bind classes overwrite `interface_version` in `__init__`: set after;
- parsed C-strings are bytes but `generate()` wants str: Latin-1 bridges;
- `generate()` silently truncates over-long C-strings: we refuse instead;
- it would emit a body for error responses; SMPP 3.4 says none is sent.

submit_sm, deliver_sm and their responses (status 0) go through `fast`, a
byte-level path property-tested to give exactly what the smpplib path gives;
anything it does not handle plainly (malformed, odd values) comes back None
and takes the smpplib path. `decode_reference`/`encode_reference` are the
smpplib path alone, for those tests and `benchmarks.codec`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

import smpplib.exceptions  # type: ignore[import-untyped]
import smpplib.smpp  # type: ignore[import-untyped]

from smsgw.smpp import fast
from smsgw.smpp.pdu import (
    COMMAND_IDS,
    COMMAND_NAMES,
    HEADER_SIZE,
    RESPONSE_BIT,
    DecodeError,
    EncodeError,
    FieldValue,
    Pdu,
)
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.wire import (
    EXTRA_SPECS,
    FieldSpec,
    encode_mandatory,
    pack_tlvs,
    walk_mandatory,
    walk_tlvs,
)

_HEADER = struct.Struct(">LLLL")

# Commands whose body is the header alone: any body is a bad command_length.
HEADER_ONLY = frozenset(
    {"generic_nack", "enquire_link", "enquire_link_resp", "unbind", "unbind_resp"}
)


def _new(command: str, sequence: int) -> Any:
    obj = smpplib.smpp.make_pdu(command, client=None, sequence=sequence)
    obj.sequence = sequence
    return obj


def _spec_from_smpplib(command: str) -> tuple[FieldSpec, ...] | None:
    """Mandatory-field spec derived from smpplib's own params (None: unsupported)."""
    try:
        obj = _new(command, 1)
    except smpplib.exceptions.UnknownCommandError:
        return None
    spec: list[FieldSpec] = []
    for name in obj.params_order:
        if obj.field_is_optional(name):
            break
        param = obj.params[name]
        if param.type is int:
            spec.append((name, "int", param.size))
        elif param.type is str:
            spec.append((name, "cstr", param.max))
        else:
            spec.append((name, "ostr", param.len_field))
    return tuple(spec)


def _build_specs() -> tuple[dict[str, tuple[FieldSpec, ...]], frozenset[str]]:
    specs: dict[str, tuple[FieldSpec, ...]] = {}
    native: set[str] = set()
    for command in COMMAND_IDS:
        spec = _spec_from_smpplib(command)
        if spec is not None:
            specs[command] = spec
            native.add(command)
        else:
            specs[command] = EXTRA_SPECS[command]
    return specs, frozenset(native)


SPECS, SMPPLIB_COMMANDS = _build_specs()

FastDecoder = Callable[[bytes], "tuple[dict[str, FieldValue], int] | None"]
FastEncoder = Callable[[Mapping[str, FieldValue]], "bytes | None"]


def _fast_table() -> tuple[dict[str, FastDecoder], dict[str, FastEncoder]]:
    """The fast path per command, only where smpplib's layout is the one `fast` knows."""
    dec: dict[str, FastDecoder] = {}
    enc: dict[str, FastEncoder] = {}
    for command, layout, d, e in (
        ("submit_sm", fast.SM_LAYOUT, fast.decode_sm, fast.encode_sm),
        ("deliver_sm", fast.SM_LAYOUT, fast.decode_sm, fast.encode_sm),
        ("submit_sm_resp", fast.RESP_LAYOUT, fast.decode_resp, fast.encode_resp),
        ("deliver_sm_resp", fast.RESP_LAYOUT, fast.decode_resp, fast.encode_resp),
    ):
        if command in SMPPLIB_COMMANDS and SPECS[command] == layout:
            dec[command], enc[command] = d, e
    return dec, enc


FAST_DECODE, FAST_ENCODE = _fast_table()


def decode_header(frame: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number)."""
    length, command_id, status, sequence = struct.unpack_from(">LLLL", frame)
    return int(length), int(command_id), int(status), int(sequence)


def decode(frame: bytes) -> Pdu:
    """Decode one complete frame; every failure is a DecodeError with a status."""
    return _decode(frame, use_fast=True)


def decode_reference(frame: bytes) -> Pdu:
    """`decode` through smpplib only (what the fast path is tested against)."""
    return _decode(frame, use_fast=False)


def _decode(frame: bytes, *, use_fast: bool) -> Pdu:
    if len(frame) < HEADER_SIZE:
        raise DecodeError(S.ESME_RINVCMDLEN, f"{len(frame)} octets is shorter than a header")
    length, command_id, status, sequence = decode_header(frame)
    where = {"sequence": sequence, "command_id": command_id}
    if length != len(frame):
        raise DecodeError(S.ESME_RINVCMDLEN, f"length {length} != {len(frame)}", **where)
    command = COMMAND_NAMES.get(command_id)
    if command is None:
        raise DecodeError(S.ESME_RINVCMDID, f"unknown command_id 0x{command_id:08X}", **where)
    is_response = bool(command_id & RESPONSE_BIT)
    if is_response and status != 0:
        return Pdu(command, sequence, status)  # error responses carry no body
    body = frame[HEADER_SIZE:]
    fast_decode = FAST_DECODE.get(command) if use_fast else None
    if fast_decode is not None:
        found = fast_decode(body)
        if found is not None:
            try:
                tlvs = walk_tlvs(body[found[1] :])
            except DecodeError as exc:
                raise DecodeError(exc.status, exc.detail, **where) from None
            return Pdu(command, sequence, status, found[0], tlvs)
    if command in HEADER_ONLY and body:
        raise DecodeError(S.ESME_RINVCMDLEN, f"{command} with a body", **where)
    try:
        fields, end = walk_mandatory(SPECS[command], body, allow_short=is_response)
        tlvs = walk_tlvs(body[end:])
    except DecodeError as exc:
        raise DecodeError(exc.status, exc.detail, **where) from None
    if command in SMPPLIB_COMMANDS:
        fields = _smpplib_fields(command, frame[: HEADER_SIZE + end], sequence)
    return Pdu(command, sequence, status, fields, tlvs)


def _smpplib_fields(command: str, frame: bytes, sequence: int) -> dict[str, FieldValue]:
    try:
        obj = smpplib.smpp.parse_pdu(frame, client=None, sequence=sequence)
    except Exception as exc:  # smpplib raises anything; the frame was pre-validated
        raise DecodeError(
            S.ESME_RSYSERR, f"smpplib: {exc!r}", sequence=sequence, command_id=COMMAND_IDS[command]
        ) from None
    fields: dict[str, FieldValue] = {}
    for name, kind, arg in SPECS[command]:
        value = getattr(obj, name, None)
        if isinstance(value, int | bytes):
            fields[name] = value
        elif kind == "ostr" and arg in fields:
            fields[name] = b""  # smpplib stops at the end of the body: sm_length 0
    return fields


def encode(pdu: Pdu) -> bytes:
    """Encode a Pdu; raises EncodeError for values that do not fit."""
    if pdu.status == 0:
        fast_encode = FAST_ENCODE.get(pdu.command)
        if fast_encode is not None and 0 <= pdu.sequence <= 0xFFFFFFFF:
            body = fast_encode(pdu.fields)
            if body is not None:
                if pdu.tlvs:
                    body += pack_tlvs(pdu.tlvs)
                return (
                    _HEADER.pack(HEADER_SIZE + len(body), COMMAND_IDS[pdu.command], 0, pdu.sequence)
                    + body
                )
    return encode_reference(pdu)


def encode_reference(pdu: Pdu) -> bytes:
    """`encode` through smpplib only (what the fast path is tested against)."""
    command_id = COMMAND_IDS.get(pdu.command)
    if command_id is None:
        raise EncodeError(f"unknown command {pdu.command!r}")
    if not 0 <= pdu.sequence <= 0xFFFFFFFF or not 0 <= pdu.status <= 0xFFFFFFFF:
        raise EncodeError(f"sequence/status out of range: {pdu.sequence}, {pdu.status}")
    spec = SPECS[pdu.command]
    if command_id & RESPONSE_BIT and pdu.status != 0:
        body = b""
    else:
        body = encode_mandatory(spec, pdu.fields)  # also validates every value
        if pdu.command in SMPPLIB_COMMANDS:
            body = _smpplib_body(pdu, spec)
    body += pack_tlvs(pdu.tlvs)
    header = struct.pack(">LLLL", HEADER_SIZE + len(body), command_id, pdu.status, pdu.sequence)
    return header + body


def _smpplib_body(pdu: Pdu, spec: tuple[FieldSpec, ...]) -> bytes:
    obj = _new(pdu.command, pdu.sequence)
    obj.status = pdu.status
    for name, kind, _arg in spec:
        value = pdu.fields.get(name)
        if kind == "cstr":
            setattr(obj, name, pdu.get_bytes(name).decode("latin-1"))
        elif kind == "int":
            setattr(obj, name, value if isinstance(value, int) else 0)
        elif kind == "ostr":
            setattr(obj, name, pdu.get_bytes(name))
    try:
        raw: bytes = obj.generate()
    except Exception as exc:  # pre-validated by encode_mandatory; keep it typed anyway
        raise EncodeError(f"smpplib could not encode {pdu.command}: {exc!r}") from exc
    return raw[HEADER_SIZE:]
