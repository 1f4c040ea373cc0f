"""Byte-level fast path for the hot PDUs: submit_sm, deliver_sm and their _resp.

Why: every message crosses the codec at least eight times (customer submit
and its resp, provider submit and its resp, receipt deliver_sm and its resp
on each side), and python-smpplib's object model costs ~30 µs per
submit_sm/deliver_sm each way (``docs/PROFILE.md``): a third of the listener
and half a provider bind. DESIGN.md allows a faster path only where property
tests prove it byte-identical to smpplib; ``tests/unit/test_smpp_fast.py``
does that for every PDU these four commands can carry (every octet value of
the integer fields, every data_coding, C-strings of any length and content,
empty and maximal short_message, any TLVs, bodies cut short anywhere).

The contract with `codec`: each function here returns None whenever its
input is anything but the plain well-formed case (a C-string without NUL, a
body shorter than its fields, an integer out of range, a value of an
unexpected type...). `codec` then takes the smpplib path, which raises the
right error or handles the odd case exactly as before. So the fast path can
only ever produce what smpplib produces, never an error of its own.

Layouts are SMPP 3.4 §4.4.1 (submit_sm), §4.6.1 (deliver_sm; the same
mandatory fields) and §4.4.2 / §4.6.2 (the responses: message_id only,
which deliver_sm_resp sets to NULL). `codec` checks at import that smpplib's
own field list still matches these layouts and disables the fast path for a
command whose layout differs.
"""

from __future__ import annotations

from collections.abc import Mapping

from smsgw.smpp.pdu import FieldValue

# (name, kind, arg) exactly as `codec.SPECS` derives it from smpplib.
SM_LAYOUT: tuple[tuple[str, str, int | str], ...] = (
    ("service_type", "cstr", 6),
    ("source_addr_ton", "int", 1),
    ("source_addr_npi", "int", 1),
    ("source_addr", "cstr", 21),
    ("dest_addr_ton", "int", 1),
    ("dest_addr_npi", "int", 1),
    ("destination_addr", "cstr", 21),
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
)
RESP_LAYOUT: tuple[tuple[str, str, int | str], ...] = (("message_id", "cstr", 65),)

Fields = dict[str, FieldValue]


def decode_sm(body: bytes) -> tuple[Fields, int] | None:
    """submit_sm / deliver_sm mandatory fields and where they end (None: not plain)."""
    find = body.find
    e1 = find(b"\0")
    if e1 < 0:
        return None
    e2 = find(b"\0", e1 + 3)  # after source_addr_ton, source_addr_npi
    if e2 < 0:
        return None
    e3 = find(b"\0", e2 + 3)  # after dest_addr_ton, dest_addr_npi
    if e3 < 0:
        return None
    e4 = find(b"\0", e3 + 4)  # after esm_class, protocol_id, priority_flag
    if e4 < 0:
        return None
    e5 = find(b"\0", e4 + 1)
    if e5 < 0:
        return None
    p = e5 + 1
    if p + 5 > len(body):
        return None
    sm_length = body[p + 4]
    end = p + 5 + sm_length
    if end > len(body):
        return None
    return {
        "service_type": body[:e1],
        "source_addr_ton": body[e1 + 1],
        "source_addr_npi": body[e1 + 2],
        "source_addr": body[e1 + 3 : e2],
        "dest_addr_ton": body[e2 + 1],
        "dest_addr_npi": body[e2 + 2],
        "destination_addr": body[e2 + 3 : e3],
        "esm_class": body[e3 + 1],
        "protocol_id": body[e3 + 2],
        "priority_flag": body[e3 + 3],
        "schedule_delivery_time": body[e3 + 4 : e4],
        "validity_period": body[e4 + 1 : e5],
        "registered_delivery": body[p],
        "replace_if_present_flag": body[p + 1],
        "data_coding": body[p + 2],
        "sm_default_msg_id": body[p + 3],
        "sm_length": sm_length,
        "short_message": body[p + 5 : end],
    }, end


def decode_resp(body: bytes) -> tuple[Fields, int] | None:
    """submit_sm_resp / deliver_sm_resp (status 0): message_id, possibly absent."""
    if not body:
        return {}, 0  # a response may stop at a field boundary (codec's allow_short)
    end = body.find(b"\0")
    if end < 0:
        return None
    return {"message_id": body[:end]}, end + 1


def _cstr(value: FieldValue | None, max_len: int) -> bytes | None:
    """The C-string's octets with its NUL, or None if it is not a plain fit."""
    if value is None:
        return b"\0"
    if type(value) is bytes:
        raw = value
    elif type(value) is str:
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            return None
    else:
        return None
    if len(raw) >= max_len or b"\0" in raw:
        return None
    return raw + b"\0"


def _octet(fields: Mapping[str, FieldValue], name: str) -> int | None:
    value = fields.get(name)
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= 0xFF:
        return None
    return value


_SM_INTS = (
    ("source_addr_ton", "source_addr_npi"),
    ("dest_addr_ton", "dest_addr_npi"),
    ("esm_class", "protocol_id", "priority_flag"),
    ("registered_delivery", "replace_if_present_flag", "data_coding", "sm_default_msg_id"),
)


def encode_sm(fields: Mapping[str, FieldValue]) -> bytes | None:
    """submit_sm / deliver_sm mandatory body (sm_length recomputed), or None."""
    ints: list[bytes] = []
    for group in _SM_INTS:
        values = [_octet(fields, name) for name in group]
        if None in values:
            return None
        ints.append(bytes(v for v in values if v is not None))
    cstrs = [
        _cstr(fields.get(name), size)
        for name, size in (
            ("service_type", 6),
            ("source_addr", 21),
            ("destination_addr", 21),
            ("schedule_delivery_time", 17),
            ("validity_period", 17),
        )
    ]
    service_type, source, dest, schedule, validity = cstrs
    if service_type is None or source is None or dest is None:
        return None
    if schedule is None or validity is None:
        return None
    message = fields.get("short_message")
    if message is None:
        sm = b""
    elif type(message) is bytes:
        sm = message
    else:
        return None  # str and other types: the general path
    if len(sm) > 0xFF:
        return None
    return b"".join(
        (
            service_type,
            ints[0],
            source,
            ints[1],
            dest,
            ints[2],
            schedule,
            validity,
            ints[3],
            bytes((len(sm),)),
            sm,
        )
    )


def encode_resp(fields: Mapping[str, FieldValue]) -> bytes | None:
    """submit_sm_resp / deliver_sm_resp (status 0) body, or None."""
    return _cstr(fields.get("message_id"), 65)
