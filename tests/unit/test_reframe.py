"""smsgw.reframe: reference rewrite, re-segmentation, payload split, id mapping."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Literal

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from smsgw.message import AcceptedMessage
from smsgw.records import Routed
from smsgw.reframe import SEGMENTATION_MODES, UDHI, OutPart, outgoing
from smsgw.segment import Part, concat_udh, join_parts, split_sar, split_text
from smsgw.smpp.udh import Concat, concat_info, parse_udh
from tests.helpers.depth import examples
from tests.helpers.messages import accepted_message

EXTENSION = "€[]{}^~\\|"
CODEC = {0: "gsm03.38", 1: "ascii", 3: "latin-1", 8: "utf-16-be"}
PART = {  # octets of body per part, by ref_bits
    8: {0: 153, 1: 134, 3: 134, 8: 134},
    16: {0: 152, 1: 133, 3: 133, 8: 132},
}
SINGLE = {0: 160, 1: 140, 3: 140, 8: 140}
FRAMING = {"udh8": ("udh", 8), "udh16": ("udh", 16), "sar": ("sar", 16)}
# Port addressing (IEI 0x05, 16-bit ports): WAP push to 2948 from 9200.
PORTS_IE = bytes((0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0))


def _gsm_basic() -> str:
    return "".join(bytes((b,)).decode("gsm03.38") for b in range(128) if b != 0x1B)


GSM_BASIC = _gsm_basic()
fast = settings(deadline=None, max_examples=examples(120))


def accepted(
    mid: str,
    *,
    short_message: bytes = b"",
    message_payload: bytes | None = None,
    udh: bytes | None = None,
    concat: Concat | None = None,
    data_coding: int = 0,
    esm_class: int | None = None,
) -> AcceptedMessage:
    return accepted_message(
        mid,
        service_type="CMT",  # fields a re-cut must carry over unchanged
        esm_class=(UDHI if udh else 0) if esm_class is None else esm_class,
        priority=1,
        validity_period="000001000000000R",
        data_coding=data_coding,
        short_message=short_message,
        message_payload=message_payload,
        udh=udh,
        concat=concat,
        tlvs={0x1400: b"\x01"},
    )


def customer_parts(
    bodies: list[bytes],
    framing: str,
    *,
    ref: int,
    data_coding: int = 0,
    extra_ie: bytes = b"",
    prefix: str = "c",
    esm_class: int = 0,
) -> tuple[AcceptedMessage, ...]:
    """Parts as a customer sent them: ids c1..cN, `framing` udh8, udh16 or sar."""
    total = len(bodies)
    out = []
    for seq, body in enumerate(bodies, start=1):
        if framing == "sar":
            concat = Concat(ref, total, seq, 16, "sar")
            out.append(
                accepted(
                    f"{prefix}{seq}",
                    short_message=body,
                    concat=concat,
                    data_coding=data_coding,
                    esm_class=esm_class,
                )
            )
            continue
        bits = FRAMING[framing][1]
        cudh = concat_udh(ref, total, seq, bits)
        udh = bytes((cudh[0] + len(extra_ie),)) + extra_ie + cudh[1:]
        c = concat_info(parse_udh(udh))
        assert c is not None
        out.append(
            accepted(
                f"{prefix}{seq}",
                short_message=udh + body,
                udh=udh,
                concat=c,
                data_coding=data_coding,
                esm_class=esm_class | UDHI,
            )
        )
    return tuple(out)


def duplicate(m: AcceptedMessage, mid: str) -> AcceptedMessage:
    return dataclasses.replace(m, id=mid)


def ids_of(
    parts: tuple[AcceptedMessage, ...], dups: tuple[AcceptedMessage, ...] = ()
) -> dict[int, list[str]]:
    return Routed(parts[0], "prov", parts=parts, duplicates=dups).ids_by_seq()


def as_parts(out: list[OutPart]) -> list[Part]:
    """The outgoing messages read back as segment Parts (for join_parts)."""
    result = []
    for o in out:
        m = o.message
        data = m.message_payload if m.message_payload is not None else m.short_message
        body = data[len(m.udh) :] if m.udh is not None else data
        c = m.concat
        result.append(Part(1, 1, body) if c is None else Part(c.seq, c.total, body))
    return result


def text_of(out: list[OutPart], data_coding: int) -> str:
    return join_parts(as_parts(out), data_coding)


def ceil_target(i: int, n: int, m: int) -> int:
    """0-based outgoing index that customer part i (0-based) of n follows, of m."""
    return -(-(i + 1) * m // n) - 1


def check_udhi(out: list[OutPart]) -> None:
    for o in out:
        assert bool(o.message.esm_class & UDHI) == (o.message.udh is not None)


def check_framing(out: list[OutPart], mode: str, ref: int, data_coding: int) -> None:
    """Outgoing parts carry `mode` framing under the bind's `ref`, numbered 1..M."""
    check_udhi(out)
    total = len(out)
    if total == 1:
        m = out[0].message
        assert m.concat is None and m.udh is None and m.message_payload is None
        assert len(m.short_message) <= SINGLE[data_coding]
        return
    source, bits = FRAMING[mode]
    r = ref & ((1 << bits) - 1)
    for seq, o in enumerate(out, start=1):
        m = o.message
        assert m.message_payload is None
        assert m.concat == Concat(r, total, seq, bits, source)
        if source == "sar":
            assert m.udh is None
            body = m.short_message
        else:
            assert m.udh == concat_udh(r, total, seq, bits)
            assert m.short_message.startswith(m.udh)
            body = m.short_message[len(m.udh) :]
        assert len(body) <= PART[bits][data_coding]
        # Every outgoing body decodes alone: no escape or surrogate pair is cut.
        body.decode(CODEC[data_coding])
        if data_coding == 0:
            assert (len(body) - len(body.rstrip(b"\x1b"))) % 2 == 0


def check_ids(out: list[OutPart], ids_by_seq: dict[int, list[str]], n: int) -> None:
    """Each customer id exactly once; customer part i follows outgoing ceil((i+1)M/N)."""
    flat = [i for o in out for i in o.ids]
    expected = [i for seq in range(1, n + 1) for i in ids_by_seq[seq]]
    assert Counter(flat) == Counter(expected)
    assert flat == expected  # the mapping is monotone: customer order is kept
    for i in range(n):
        target = ceil_target(i, n, len(out))
        for mid in ids_by_seq[i + 1]:
            assert mid in out[target].ids
    for o in out:
        if o.ids:
            assert o.message.id == o.ids[0]


def check_unchanged_fields(out: list[OutPart], template: AcceptedMessage) -> None:
    for o in out:
        m = o.message
        for name in (
            "customer",
            "bind",
            "command",
            "source",
            "destination",
            "service_type",
            "protocol_id",
            "priority",
            "validity_period",
            "registered_delivery",
            "data_coding",
            "received_at",
            "tlvs",
        ):
            assert getattr(m, name) == getattr(template, name), name
        assert m.esm_class & ~UDHI == template.esm_class & ~UDHI


# --------------------------------------------------------- keep: ref rewrite


def test_keep_rewrites_the_8bit_udh_reference_in_place() -> None:
    parts = customer_parts([b"a" * 153, b"b" * 20], "udh8", ref=0x11)
    out = outgoing(parts, ids_of(parts), mode="keep", ref=0x1234)
    assert len(out) == 2
    for seq, (o, m) in enumerate(zip(out, parts, strict=True), start=1):
        assert o.message.udh == bytes((0x05, 0x00, 0x03, 0x34, 2, seq))
        assert o.message.short_message == o.message.udh + m.short_message[6:]
        assert o.message.concat == Concat(0x34, 2, seq, 8, "udh")
        assert o.message.id == m.id and o.ids == (m.id,)
        assert o.message.esm_class == m.esm_class
        assert o.message.message_payload is None
        assert (
            dataclasses.replace(
                o.message, udh=m.udh, short_message=m.short_message, concat=m.concat
            )
            == m
        )


def test_keep_rewrites_the_16bit_udh_reference_in_place() -> None:
    parts = customer_parts([b"x" * 152, b"y" * 152, b"z"], "udh16", ref=0x0102)
    out = outgoing(parts, ids_of(parts), mode="keep", ref=0xBEEF)
    for seq, (o, m) in enumerate(zip(out, parts, strict=True), start=1):
        assert o.message.udh == bytes((0x06, 0x08, 0x04, 0xBE, 0xEF, 3, seq))
        assert o.message.short_message[7:] == m.short_message[7:]
        assert o.message.concat == Concat(0xBEEF, 3, seq, 16, "udh")


def test_keep_rewrites_the_sar_reference() -> None:
    parts = customer_parts([b"a" * 152, b"b"], "sar", ref=0x0A0B)
    out = outgoing(parts, ids_of(parts), mode="keep", ref=0x1C0DE)  # masked to 16 bits
    for o, m in zip(out, parts, strict=True):
        assert m.concat is not None
        assert o.message.concat == dataclasses.replace(m.concat, ref=0xC0DE)
        assert o.message.short_message == m.short_message
        assert o.message.udh is None and not o.message.esm_class & UDHI


def test_keep_rewrites_the_reference_of_a_udh_carried_in_message_payload() -> None:
    udh = concat_udh(5, 2, 1)
    m1 = accepted("p1", message_payload=udh + b"hello", udh=udh, concat=concat_info(parse_udh(udh)))
    udh2 = concat_udh(5, 2, 2)
    m2 = accepted(
        "p2", message_payload=udh2 + b"world", udh=udh2, concat=concat_info(parse_udh(udh2))
    )
    out = outgoing((m1, m2), ids_of((m1, m2)), mode="keep", ref=0x99)
    assert [o.message.message_payload for o in out] == [
        bytes((5, 0, 3, 0x99, 2, 1)) + b"hello",
        bytes((5, 0, 3, 0x99, 2, 2)) + b"world",
    ]
    assert [o.message.short_message for o in out] == [b"", b""]


def test_keep_rewrites_only_the_ref_when_other_elements_come_first() -> None:
    parts = customer_parts([b"\x01\x02", b"\x03"], "udh8", ref=0x42, extra_ie=PORTS_IE)
    out = outgoing(parts, ids_of(parts), mode="keep", ref=0x07)
    for seq, (o, m) in enumerate(zip(out, parts, strict=True), start=1):
        assert m.udh is not None and o.message.udh is not None
        assert o.message.udh == bytes((11,)) + PORTS_IE + bytes((0x00, 0x03, 0x07, 2, seq))
        assert o.message.short_message[len(m.udh) :] == m.short_message[len(m.udh) :]


def test_keep_ids_come_from_ids_by_seq_with_duplicates() -> None:
    parts = customer_parts([b"a" * 153, b"b" * 153, b"c"], "udh8", ref=1)
    dups = (
        duplicate(parts[0], "c1-again"),
        duplicate(parts[2], "c3-again"),
        duplicate(parts[0], "c1-third"),
    )
    out = outgoing(parts, ids_of(parts, dups), mode="keep", ref=2)
    assert [o.ids for o in out] == [("c1", "c1-again", "c1-third"), ("c2",), ("c3", "c3-again")]
    assert [o.message.id for o in out] == ["c1", "c2", "c3"]


def test_ids_default_to_the_part_id_when_ids_by_seq_lacks_a_segment() -> None:
    parts = customer_parts([b"a" * 153, b"b"], "udh8", ref=1)
    out = outgoing(parts, {}, mode="keep", ref=2)
    assert [o.ids for o in out] == [("c1",), ("c2",)]
    out = outgoing(parts, {}, mode="sar", ref=2)
    assert [i for o in out for i in o.ids] == ["c1", "c2"]


@pytest.mark.parametrize("mode", ["udh8", "udh16", "sar"])
def test_same_framing_as_the_provider_keeps_the_parts(mode: str) -> None:
    """Parts already framed as the provider wants: only the reference changes."""
    dc, bits = 0, FRAMING[mode][1]
    bodies = [b"a" * 40, b"b" * 40, b"c" * 40]  # under-filled: a re-cut would merge them
    parts = customer_parts(bodies, mode, ref=3, data_coding=dc)
    out = outgoing(parts, ids_of(parts), mode=mode, ref=0x0F0F)
    assert [p.body for p in as_parts(out)] == bodies
    r = 0x0F0F & ((1 << bits) - 1)
    assert all(o.message.concat is not None and o.message.concat.ref == r for o in out)
    assert [o.ids for o in out] == [("c1",), ("c2",), ("c3",)]
    check_udhi(out)


# ------------------------------------------------------------- re-segmenting


GSM_TEXT = ("Price: 5€ [promo] {code} ~^|\\ " * 12).strip()
CASES = [
    pytest.param(GSM_TEXT, 0, id="gsm-extension"),
    pytest.param("Grüße aus Köln, ½ Preis ¿sí? « » " * 12, 3, id="latin1"),
    pytest.param("Привет 😀👍🏽 世界 🎉 " * 20, 8, id="ucs2-emoji"),
    pytest.param("plain ascii ~ text " * 20, 1, id="ia5"),
]


def _bodies(text: str, dc: int, framing: str) -> list[bytes]:
    bits = FRAMING[framing][1]
    return [p.body for p in split_text(text, dc, ref=0, ref_bits=bits)]


@pytest.mark.parametrize(("text", "dc"), CASES)
@pytest.mark.parametrize("source", ["udh8", "udh16", "sar"])
@pytest.mark.parametrize("mode", ["udh8", "udh16", "sar"])
def test_resegmenting_round_trips_text(text: str, dc: int, source: str, mode: str) -> None:
    parts = customer_parts(_bodies(text, dc, source), source, ref=0x21, data_coding=dc)
    assert len(parts) > 1
    ids = ids_of(parts, (duplicate(parts[-1], "dup-last"),))
    out = outgoing(parts, ids, mode=mode, ref=0x3456)
    assert text_of(out, dc) == text
    check_framing(out, mode, 0x3456, dc)
    check_ids(out, ids, len(parts))
    check_unchanged_fields(out, parts[0])
    if mode != source:
        _, bits = FRAMING[mode]
        split = split_sar if mode == "sar" else split_text
        expect = split(text, dc, ref=0x3456 & ((1 << bits) - 1), ref_bits=bits)
        assert [p.body for p in as_parts(out)] == [p.body for p in expect]


@pytest.mark.parametrize(("text", "dc"), CASES)
def test_udh8_to_sar_and_udh16_and_back_round_trips(text: str, dc: int) -> None:
    parts = customer_parts(_bodies(text, dc, "udh8"), "udh8", ref=0x77, data_coding=dc)
    all_ids = [m.id for m in parts]
    current = parts
    for mode in ("sar", "udh16", "udh8", "udh16", "sar", "udh8"):
        out = outgoing(current, ids_of(current), mode=mode, ref=0x1234)
        assert text_of(out, dc) == text
        check_framing(out, mode, 0x1234, dc)
        current = tuple(o.message for o in out)
        # Ids survive the trip: the outgoing messages' ids are the ones they carry first.
        assert {i for o in out for i in o.ids} <= set(all_ids)
    assert [p.body for p in as_parts(out)] == _bodies(text, dc, "udh8")


def test_more_outgoing_parts_than_customer_parts() -> None:
    """2 full UDH8 GSM parts (306 septets) become 3 with a 16-bit ref (152 each)."""
    parts = customer_parts([b"a" * 153, b"b" * 153], "udh8", ref=1)
    out = outgoing(parts, ids_of(parts), mode="udh16", ref=9)
    assert len(out) == 3
    # ceil(1*3/2) = 2 and ceil(2*3/2) = 3: nothing follows part 1.
    assert [o.ids for o in out] == [(), ("c1",), ("c2",)]
    assert out[0].message.id == "c1"  # the template's id, answering no receipt
    assert text_of(out, 0) == "a" * 153 + "b" * 153


def test_fewer_outgoing_parts_than_customer_parts() -> None:
    """5 under-filled parts of 60 septets (300) become 2 parts of 153 + 147."""
    parts = customer_parts([bytes([0x41 + i]) * 60 for i in range(5)], "udh16", ref=1)
    dups = (duplicate(parts[3], "c4-again"),)
    out = outgoing(parts, ids_of(parts, dups), mode="udh8", ref=9)
    assert len(out) == 2
    # ceil(i*2/5) for i = 1..5 is 1, 1, 2, 2, 2.
    assert [o.ids for o in out] == [("c1", "c2"), ("c3", "c4", "c4-again", "c5")]
    assert [o.message.id for o in out] == ["c1", "c3"]


def test_resegmented_text_that_fits_one_sms_goes_out_whole() -> None:
    parts = customer_parts([b"a" * 50, b"b" * 50, b"c" * 50], "sar", ref=1)
    out = outgoing(parts, ids_of(parts, (duplicate(parts[1], "c2b"),)), mode="udh8", ref=9)
    assert len(out) == 1
    (o,) = out
    assert o.ids == ("c1", "c2", "c2b", "c3") and o.message.id == "c1"
    assert o.message.short_message == b"a" * 50 + b"b" * 50 + b"c" * 50
    assert o.message.concat is None and o.message.udh is None
    assert not o.message.esm_class & UDHI


def test_customer_cut_escape_and_surrogate_pairs_are_rejoined() -> None:
    """A naive customer splitter cut 0x1B|e and a surrogate pair; outgoing bodies are whole."""
    gsm = ("x" * 152 + "€" + "y" * 100).encode("gsm03.38")
    parts = customer_parts([gsm[:153], gsm[153:]], "udh8", ref=1)
    assert parts[0].short_message.endswith(b"\x1b")
    out = outgoing(parts, ids_of(parts), mode="sar", ref=2)
    assert text_of(out, 0) == "x" * 152 + "€" + "y" * 100
    check_framing(out, "sar", 2, 0)

    ucs = ("a" * 66 + "😀" + "b" * 40).encode("utf-16-be")
    parts = customer_parts([ucs[:134], ucs[134:]], "udh8", ref=1, data_coding=8)
    out = outgoing(parts, ids_of(parts), mode="udh16", ref=2)
    assert text_of(out, 8) == "a" * 66 + "😀" + "b" * 40
    check_framing(out, "udh16", 2, 8)


def test_other_esm_bits_are_kept_and_udhi_follows_the_udh() -> None:
    parts = customer_parts([b"a" * 153, b"b" * 153], "udh8", ref=1, esm_class=0x03)
    for mode in SEGMENTATION_MODES:
        out = outgoing(parts, ids_of(parts), mode=mode, ref=5)
        check_udhi(out)
        assert all(o.message.esm_class & 0x03 == 0x03 for o in out)
        assert all(o.message.esm_class & UDHI == (0 if mode == "sar" else UDHI) for o in out)


@pytest.mark.parametrize(
    ("bodies", "dc"),
    [
        ([b"\x00a" * 67, b"\x00"], 8),  # UCS2 of odd length
        ([b"\x00a" * 66 + b"\xd8\x3d", b"\x00b"], 8),  # lone high surrogate
        ([b"a" * 153, b"\x80b"], 0),  # not a GSM septet
        ([b"a" * 152 + b"\x1b", b"\x1b"], 0),  # escape followed by escape
        ([b"a" * 153, b"\xe9"], 1),  # not IA5
    ],
    ids=["ucs2-odd", "ucs2-lone-surrogate", "gsm-octet", "gsm-double-escape", "ia5-octet"],
)
@pytest.mark.parametrize("mode", ["udh16", "sar"])
def test_undecodable_text_is_not_recut(bodies: list[bytes], dc: int, mode: str) -> None:
    """Bodies that are not text in their coding go out as received, under the new ref."""
    parts = customer_parts(bodies, "udh8", ref=1, data_coding=dc)
    out = outgoing(parts, ids_of(parts), mode=mode, ref=5)
    assert [p.body for p in as_parts(out)] == bodies
    assert [o.message.udh for o in out] == [concat_udh(5, 2, 1), concat_udh(5, 2, 2)]
    assert [o.ids for o in out] == [("c1",), ("c2",)]
    check_udhi(out)


# ---------------------------------------------- never re-cut: binary, other IEs


@pytest.mark.parametrize("mode", ["udh8", "udh16", "sar", "keep"])
@pytest.mark.parametrize("source", ["udh8", "udh16", "sar"])
def test_binary_data_coding_is_never_recut(mode: str, source: str) -> None:
    bodies = [bytes(range(140))[: 140 - (6 if source == "udh8" else 7)], b"\xff\x00"]
    parts = customer_parts(bodies, source, ref=0x33, data_coding=4)
    out = outgoing(parts, ids_of(parts), mode=mode, ref=0xABCD)
    assert [p.body for p in as_parts(out)] == bodies
    bits = FRAMING[source][1]
    r = 0xABCD & ((1 << bits) - 1)
    for o, m in zip(out, parts, strict=True):
        assert m.concat is not None
        assert o.message.concat == dataclasses.replace(m.concat, ref=r)
        assert o.message.data_coding == 4
        assert o.ids == (m.id,)
    check_udhi(out)


@pytest.mark.parametrize("mode", ["udh8", "udh16", "sar"])
@pytest.mark.parametrize("dc", [0, 4])
def test_udh_with_port_addressing_is_never_recut(mode: str, dc: int) -> None:
    bodies = [b"a" * 100, b"b" * 100, b"c"]
    parts = customer_parts(bodies, "udh8", ref=0x42, data_coding=dc, extra_ie=PORTS_IE)
    out = outgoing(parts, ids_of(parts), mode=mode, ref=0x0102)
    assert len(out) == 3
    for seq, (o, m) in enumerate(zip(out, parts, strict=True), start=1):
        assert o.message.udh == bytes((11,)) + PORTS_IE + bytes((0x00, 0x03, 0x02, 3, seq))
        assert m.udh is not None
        assert o.message.short_message == o.message.udh + m.short_message[len(m.udh) :]
        assert o.message.concat == Concat(0x02, 3, seq, 8, "udh")
        assert o.ids == (m.id,)
    check_udhi(out)


def test_port_ie_on_a_later_part_only_also_blocks_the_recut() -> None:
    plain = customer_parts([b"a" * 153, b"b"], "udh8", ref=0x42)
    ported = customer_parts([b"a" * 153, b"b"], "udh8", ref=0x42, extra_ie=PORTS_IE)
    parts = (plain[0], ported[1])
    out = outgoing(parts, ids_of(parts), mode="udh16", ref=0x0102)
    assert [o.message.udh for o in out] == [
        concat_udh(2, 2, 1),
        bytes((11,)) + PORTS_IE + bytes((0x00, 0x03, 0x02, 2, 2)),
    ]


# ------------------------------------------------------------- message_payload


@pytest.mark.parametrize("mode", ["udh8", "udh16", "sar"])
@pytest.mark.parametrize(
    ("text", "dc"),
    [
        ("Long payload with € and [brackets] " * 20, 0),
        ("Grüße ½ " * 60, 3),
        ("Emoji 😀 payload 🎉 " * 15, 8),
    ],
)
def test_long_message_payload_is_split_with_its_id_on_the_last_part(
    mode: str, text: str, dc: int
) -> None:
    m = accepted("pay1", message_payload=text.encode(CODEC[dc]), data_coding=dc)
    out = outgoing((m,), {}, mode=mode, ref=0x0ABC)
    assert len(out) > 1
    assert text_of(out, dc) == text
    check_framing(out, mode, 0x0ABC, dc)
    assert [o.ids for o in out] == [()] * (len(out) - 1) + [("pay1",)]
    assert all(o.message.id == "pay1" for o in out)
    check_unchanged_fields(out, m)
    _, bits = FRAMING[mode]
    split = split_sar if mode == "sar" else split_text
    assert len(out) == len(split(text, dc, ref=0, ref_bits=bits))


def test_long_message_payload_is_passed_unchanged_for_keep() -> None:
    m = accepted("pay1", message_payload=b"x" * 500)
    assert outgoing((m,), {}, mode="keep", ref=3) == [OutPart(m, ("pay1",))]


def test_short_message_payload_moves_into_short_message() -> None:
    m = accepted("pay1", message_payload="short €".encode("gsm03.38"))
    (o,) = outgoing((m,), {}, mode="sar", ref=3)
    assert o.ids == ("pay1",)
    assert o.message.short_message == "short €".encode("gsm03.38")
    assert o.message.message_payload is None and o.message.concat is None
    check_udhi([o])


@pytest.mark.parametrize("mode", ["udh8", "udh16", "sar"])
def test_payloads_that_are_not_recut(mode: str) -> None:
    binary = accepted("b", message_payload=bytes(range(256)) * 2, data_coding=4)
    udh = bytes((0x06,)) + PORTS_IE
    with_udh = accepted("u", message_payload=udh + b"x" * 300, udh=udh, esm_class=UDHI)
    odd_ucs2 = accepted("o", message_payload=b"\x00a" * 200 + b"\x00", data_coding=8)
    for m in (binary, with_udh, odd_ucs2):
        assert outgoing((m,), {}, mode=mode, ref=3) == [OutPart(m, (m.id,))]


@pytest.mark.parametrize("mode", SEGMENTATION_MODES)
def test_single_short_message_passes_unchanged(mode: str) -> None:
    m = accepted("s1", short_message=b"hello")
    assert outgoing((m,), {1: ["other"]}, mode=mode, ref=3) == [OutPart(m, ("s1",))]


@pytest.mark.parametrize("mode", ["", "UDH8", "udh7", "split"])
def test_invalid_mode_raises(mode: str) -> None:
    single = accepted("s1", short_message=b"hello")
    parts = customer_parts([b"a" * 153, b"b"], "udh8", ref=1)
    with pytest.raises(ValueError, match="segmentation mode"):
        outgoing((single,), {}, mode=mode, ref=1)
    with pytest.raises(ValueError, match="segmentation mode"):
        outgoing(parts, ids_of(parts), mode=mode, ref=1)


# ------------------------------------------------------------------ properties


@st.composite
def gsm_texts(draw: st.DrawFn) -> str:
    """Runs of basic characters with extension characters between them."""
    pieces: list[str] = []
    for _ in range(draw(st.integers(1, 5))):
        run = draw(st.sampled_from([0, 1, 150, 151, 152, 153]) | st.integers(0, 160))
        pieces.append(draw(st.text(st.sampled_from(GSM_BASIC), min_size=run, max_size=run)))
        pieces.append(draw(st.text(st.sampled_from(EXTENSION), min_size=0, max_size=3)))
    return "".join(pieces)


# Lone surrogates are not text a customer can submit in UCS2.
SURROGATES: list[Literal["Cs"]] = ["Cs"]
latin1_texts = st.text(st.characters(max_codepoint=0xFF), min_size=2, max_size=500)
ucs2_texts = st.text(
    st.characters(max_codepoint=0xFFFF, exclude_categories=SURROGATES)
    | st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)  # emoji
    | st.characters(min_codepoint=0x10000, exclude_categories=SURROGATES),
    min_size=2,
    max_size=250,
)
texts = st.one_of(
    gsm_texts().map(lambda t: (t, 0)),
    latin1_texts.map(lambda t: (t, 3)),
    ucs2_texts.map(lambda t: (t, 8)),
)


@st.composite
def customer_cuts(draw: st.DrawFn, data: bytes, unit: int, cap: int) -> list[bytes]:
    """How some customer cut `data`: 2+ parts of at most `cap` octets, whole `unit`s.

    Parts may be under-filled (the provider's framing then needs fewer parts)
    and cut points may fall inside escape or surrogate pairs (naive splitters).
    """
    units = len(data) // unit
    max_units = cap // unit
    assume(units >= 2)
    least = max(1, max_units // 4)
    bodies = []
    pos = 0
    while pos < units:
        left = units - pos
        most = min(max_units, left - 1 if pos == 0 else left)  # at least two parts
        size = draw(st.just(most) | st.integers(min(least, most), most))  # often full
        bodies.append(data[pos * unit : (pos + size) * unit])
        pos += size
    return bodies


@fast
@given(
    texts,
    st.sampled_from(["udh8", "udh16", "sar"]),
    st.sampled_from(SEGMENTATION_MODES),
    st.integers(0, 0xFFFF),
    st.data(),
)
def test_any_framing_to_any_mode_keeps_text_and_every_id(
    case: tuple[str, int], source: str, mode: str, ref: int, data: st.DataObject
) -> None:
    text, dc = case
    encoded = text.encode(CODEC[dc])
    unit = 2 if dc == 8 else 1
    bits = FRAMING[source][1]
    bodies = data.draw(customer_cuts(encoded, unit, PART[bits][dc]))
    parts = customer_parts(bodies, source, ref=data.draw(st.integers(0, (1 << bits) - 1)))
    parts = tuple(dataclasses.replace(m, data_coding=dc) for m in parts)
    dup_seqs = data.draw(st.lists(st.integers(1, len(parts)), max_size=4))
    dups = tuple(duplicate(parts[s - 1], f"d{k}") for k, s in enumerate(dup_seqs))
    ids = ids_of(parts, dups)

    out = outgoing(parts, ids, mode=mode, ref=ref)
    n, m = len(parts), len(out)
    event("fewer parts out" if m < n else "more parts out" if m > n else "same part count")

    assert text_of(out, dc) == text
    check_ids(out, ids, len(parts))
    check_udhi(out)
    check_unchanged_fields(out, parts[0])
    if mode in ("keep", source):
        assert [p.body for p in as_parts(out)] == bodies  # only the reference changes
        r = ref & ((1 << bits) - 1)
        assert all(o.message.concat is not None and o.message.concat.ref == r for o in out)
    else:
        check_framing(out, mode, ref, dc)


@fast
@given(
    st.integers(2, 6),
    st.sampled_from([(0, GSM_BASIC + EXTENSION), (3, "aé½ÿ"), (8, "a😀é世")]),
    st.sampled_from(["udh16", "sar"]),
    st.data(),
)
def test_full_8bit_parts_need_one_more_16bit_part(
    n: int, alphabet: tuple[int, str], mode: str, data: st.DataObject
) -> None:
    """Full UDH8 parts re-cut for 16-bit framing spill over: M > N, ids still each once."""
    dc, chars = alphabet
    text = ""
    parts: list[Part] = []
    while len(parts) <= n:  # grow until the 8-bit split has n parts before the last
        text += data.draw(st.text(st.sampled_from(chars), min_size=40, max_size=40))
        parts = split_text(text, dc, ref=0, ref_bits=8)
    bodies = [p.body for p in parts[:n]]
    text = b"".join(bodies).decode(CODEC[dc])
    customer = customer_parts(bodies, "udh8", ref=0x10, data_coding=dc)
    dups = tuple(
        duplicate(customer[s - 1], f"d{k}")
        for k, s in enumerate(data.draw(st.lists(st.integers(1, n), max_size=3)))
    )
    ids = ids_of(customer, dups)
    out = outgoing(customer, ids, mode=mode, ref=0x2222)
    assert text_of(out, dc) == text
    check_framing(out, mode, 0x2222, dc)
    check_ids(out, ids, n)
    if all(len(b) == PART[8][dc] for b in bodies):
        assert len(out) == n + 1
    event("more parts out" if len(out) > n else "same part count")
