"""The byte-level fast path (smpp.fast) is byte-identical to the smpplib path.

DESIGN.md allows a codec faster than python-smpplib only where property
tests prove it equal for every PDU the gateway produces or accepts: these
compare `codec.encode`/`decode` (fast path first) with `encode_reference`/
`decode_reference` (smpplib only) for submit_sm, deliver_sm and their
responses, well-formed or not: all integer octets (every data_coding,
esm_class, registered_delivery), C-strings of any content and length,
empty to maximal short_message, the TLVs the gateway reads and writes
(SAR, message_payload, receipted_message_id, message_state, ...) and any
others, bodies cut short anywhere, errors included.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smsgw.smpp import fast
from smsgw.smpp.codec import (
    FAST_DECODE,
    FAST_ENCODE,
    SPECS,
    decode,
    decode_reference,
    encode,
    encode_reference,
)
from smsgw.smpp.pdu import COMMAND_IDS, DecodeError, EncodeError, Pdu
from smsgw.smpp.wire import FIXED_TLV_SIZES
from tests.helpers.depth import examples

SM = ("submit_sm", "deliver_sm")
RESP = ("submit_sm_resp", "deliver_sm_resp")
FAST = SM + RESP

octet = st.integers(0, 255)
no_nul = st.binary(max_size=70).map(lambda b: b.replace(b"\0", b"\1"))


def cstr(max_len: int) -> st.SearchStrategy[bytes]:
    """C-string contents that fit (no NUL, shorter than the field)."""
    return st.binary(max_size=max_len - 1).map(lambda b: b.replace(b"\0", b"\x80"))


# TLVs the gateway sends or reads on these commands (SMPP 3.4 §5.3.2), with
# their spec sizes, and any other tag with any value.
GATEWAY_TLVS = st.one_of(
    st.tuples(st.just(0x020C), st.binary(min_size=2, max_size=2)),  # sar_msg_ref_num
    st.tuples(st.sampled_from([0x020E, 0x020F]), st.binary(min_size=1, max_size=1)),  # SAR
    st.tuples(st.just(0x0424), st.binary(max_size=300)),  # message_payload
    st.tuples(st.just(0x001E), cstr(65).map(lambda b: b + b"\0")),  # receipted_message_id
    st.tuples(st.just(0x0427), st.binary(min_size=1, max_size=1)),  # message_state
    st.tuples(st.just(0x0423), st.binary(min_size=3, max_size=3)),  # network_error_code
    st.tuples(st.sampled_from([0x0204, 0x020A, 0x020B]), st.binary(min_size=2, max_size=2)),
    st.sampled_from(sorted(FIXED_TLV_SIZES.items())).flatmap(
        lambda kv: st.tuples(st.just(kv[0]), st.binary(min_size=kv[1], max_size=kv[1]))
    ),
    st.tuples(
        st.integers(0, 0xFFFF).filter(lambda t: t not in FIXED_TLV_SIZES), st.binary(max_size=20)
    ),
)
# ... and, where errors are compared too, any tag with any length (a fixed-size
# TLV of the wrong length is ESME_RINVPARLEN on both paths).
ANY_TLVS = st.one_of(GATEWAY_TLVS, st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=4)))


@st.composite
def sm_fields(draw: st.DrawFn, *, plain: bool = True) -> dict[str, Any]:
    """submit_sm/deliver_sm fields; `plain=False` adds odd values the fast path refuses."""
    fields: dict[str, Any] = {}
    for name, kind, arg in SPECS["submit_sm"]:
        if name == "sm_length":
            if draw(st.booleans()):
                fields[name] = draw(octet)  # ignored: recomputed from short_message
            continue
        if kind == "int":
            value: Any = draw(octet)
        elif kind == "cstr":
            assert isinstance(arg, int)
            value = draw(cstr(arg))
            if draw(st.integers(0, 4)) == 0:
                value = value.decode("latin-1")  # str is accepted when building
        else:
            value = draw(st.binary(max_size=255))
        if not plain and draw(st.integers(0, 5)) == 0:
            value = draw(
                st.one_of(
                    st.integers(-3, 300),
                    st.binary(max_size=300),
                    st.text(max_size=30),
                    st.none(),
                )
            )
        if draw(st.integers(0, 9)) or not plain:
            fields[name] = value  # else left out: defaults (0, empty)
    return fields


def _same(fast_call: Any, ref_call: Any) -> None:
    """Both give the same value, or both raise the same error."""
    try:
        want = ref_call()
    except Exception as ref_err:  # EncodeError, DecodeError, UnicodeEncodeError (str values)
        with pytest.raises(type(ref_err)) as got_err:
            fast_call()
        assert str(got_err.value) == str(ref_err)
        if isinstance(ref_err, DecodeError):
            assert isinstance(got_err.value, DecodeError)
            assert (got_err.value.status, got_err.value.sequence, got_err.value.command_id) == (
                ref_err.status,
                ref_err.sequence,
                ref_err.command_id,
            )
        return
    assert fast_call() == want


def _frame(command: str, sequence: int, body: bytes, status: int = 0) -> bytes:
    return struct.pack(">LLLL", 16 + len(body), COMMAND_IDS[command], status, sequence) + body


def test_the_fast_path_serves_the_four_hot_commands() -> None:
    assert set(FAST_DECODE) == set(FAST) == set(FAST_ENCODE)
    assert SPECS["submit_sm"] == SPECS["deliver_sm"] == fast.SM_LAYOUT
    assert SPECS["submit_sm_resp"] == SPECS["deliver_sm_resp"] == fast.RESP_LAYOUT


@settings(max_examples=examples(300), deadline=None)
@given(
    command=st.sampled_from(SM),
    fields=sm_fields(),
    sequence=st.integers(0, 0xFFFFFFFF),
    tlvs=st.lists(GATEWAY_TLVS, max_size=5),
)
def test_plain_sm_is_byte_identical_both_ways(
    command: str, fields: dict[str, Any], sequence: int, tlvs: list[tuple[int, bytes]]
) -> None:
    pdu = Pdu(command, sequence, 0, fields, tuple(tlvs))
    # not vacuous: the fast path takes every plain PDU (str values excepted)
    if not any(isinstance(v, str) and k == "short_message" for k, v in fields.items()):
        assert fast.encode_sm(fields) is not None
    frame = encode(pdu)
    assert frame == encode_reference(pdu)
    body = frame[16:]
    assert fast.decode_sm(body) is not None
    assert decode(frame) == decode_reference(frame)
    assert encode(decode(frame)) == frame


@settings(max_examples=examples(400), deadline=None)
@given(
    command=st.sampled_from(SM),
    fields=sm_fields(plain=False),
    sequence=st.integers(0, 0xFFFFFFFF),
    tlvs=st.lists(ANY_TLVS, max_size=3),
)
def test_odd_sm_values_encode_like_smpplib_or_fail_alike(
    command: str, fields: dict[str, Any], sequence: int, tlvs: list[tuple[int, bytes]]
) -> None:
    pdu = Pdu(command, sequence, 0, fields, tuple(tlvs))
    _same(lambda: encode(pdu), lambda: encode_reference(pdu))


@settings(max_examples=examples(400), deadline=None)
@given(
    command=st.sampled_from(RESP),
    message_id=st.none() | cstr(65) | no_nul | st.text(max_size=70),
    sequence=st.integers(0, 0xFFFFFFFF),
    status=st.sampled_from([0, 0, 0, 0x08, 0x14, 0x58]),
    tlvs=st.lists(ANY_TLVS, max_size=2),
)
def test_responses_both_ways(
    command: str, message_id: Any, sequence: int, status: int, tlvs: list[tuple[int, bytes]]
) -> None:
    fields = {} if message_id is None else {"message_id": message_id}
    pdu = Pdu(command, sequence, status, fields, tuple(tlvs))
    _same(lambda: encode(pdu), lambda: encode_reference(pdu))
    try:
        frame = encode_reference(pdu)
    except (EncodeError, UnicodeEncodeError):
        return
    _same(lambda: decode(frame), lambda: decode_reference(frame))


@settings(max_examples=examples(400), deadline=None)
@given(
    command=st.sampled_from(FAST),
    fields=sm_fields(),
    tlvs=st.lists(ANY_TLVS, max_size=3),
    cut=st.integers(0, 400),
    junk=st.binary(max_size=12),
    status=st.sampled_from([0, 0, 0, 0x45]),
)
@example(command="deliver_sm_resp", fields={}, tlvs=[], cut=0, junk=b"", status=0)
@example(command="submit_sm_resp", fields={}, tlvs=[], cut=0, junk=b"abc", status=0)
def test_cut_or_padded_frames_decode_alike(
    command: str,
    fields: dict[str, Any],
    tlvs: list[tuple[int, bytes]],
    cut: int,
    junk: bytes,
    status: int,
) -> None:
    if command in RESP:
        fields = {"message_id": fields.get("source_addr", b"")}
    body = encode_reference(Pdu(command, 7, 0, fields, tuple(tlvs)))[16:]
    frame = _frame(command, 7, body[:cut] + junk, status)
    _same(lambda: decode(frame), lambda: decode_reference(frame))


@settings(max_examples=examples(300), deadline=None)
@given(command=st.sampled_from(FAST), body=st.binary(max_size=200))
def test_random_bodies_decode_alike(command: str, body: bytes) -> None:
    frame = _frame(command, 99, body)
    _same(lambda: decode(frame), lambda: decode_reference(frame))
