"""smsgw.segment: split/join round trips, capacities, UDH/SAR vectors, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smpplib import consts as smpp_consts
from smpplib import gsm as smpp_gsm

from smsgw.segment import (
    Part,
    SegmentError,
    choose_coding,
    concat_udh,
    join_parts,
    split_sar,
    split_text,
)
from smsgw.smpp.udh import concat_info, parse_udh
from tests.helpers.depth import examples

EXTENSION = "€[]{}^~\\|"
SINGLE = {0: 160, 1: 140, 3: 140, 8: 140}  # octets of body for one SMS
PART = {  # octets of body per part, by ref_bits
    8: {0: 153, 1: 134, 3: 134, 8: 134},
    16: {0: 152, 1: 133, 3: 133, 8: 132},
}
CODEC = {0: "gsm03.38", 1: "ascii", 3: "latin-1", 8: "utf-16-be"}


def _gsm_basic() -> str:
    """GSM 03.38 basic-table characters, read from the codec's decoder."""
    return "".join(bytes((b,)).decode("gsm03.38") for b in range(128) if b != 0x1B)


GSM_BASIC = _gsm_basic()

fast = settings(deadline=None, max_examples=examples(150))


@st.composite
def gsm_texts(draw: st.DrawFn) -> str:
    """Runs of basic characters with extension characters between them.

    Run lengths near 152/153 put escape pairs right at the cut points.
    """
    pieces: list[str] = []
    for _ in range(draw(st.integers(1, 8))):
        run = draw(st.sampled_from([0, 1, 2, 150, 151, 152, 153, 159, 160]) | st.integers(0, 160))
        pieces.append(draw(st.text(st.sampled_from(GSM_BASIC), min_size=run, max_size=run)))
        pieces.append(draw(st.text(st.sampled_from(EXTENSION), min_size=0, max_size=3)))
    return "".join(pieces)


latin1_texts = st.text(st.characters(max_codepoint=0xFF), max_size=600)
ascii_texts = st.text(st.characters(max_codepoint=0x7F), max_size=600)
# Lone surrogates (U+D800..U+DFFF) are not text: no customer can submit one in UCS2
# (the codec refuses them), so they are excluded from the round-trip property.
ucs2_texts = st.text(
    st.characters(max_codepoint=0xFFFF, codec="utf-8")
    | st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)  # emoji
    | st.characters(min_codepoint=0x10000, codec="utf-8"),
    max_size=300,
)


def _check(text: str, dc: int, ref_bits: int, parts: list[Part], *, sar: bool = False) -> None:
    """Properties every split must have."""
    assert join_parts(parts, dc) == text
    assert join_parts(list(reversed(parts)), dc) == text
    assert [p.seq for p in parts] == list(range(1, len(parts) + 1))
    assert all(p.total == len(parts) for p in parts)
    if len(parts) == 1:
        assert parts[0].udh == b"" and parts[0].sar is None
        assert len(parts[0].body) <= SINGLE[dc]
        return
    cap = PART[ref_bits][dc]
    for p in parts:
        assert len(p.body) <= cap
        # Every body is text on its own: no cut escape or surrogate pair.
        assert p.body.decode(CODEC[dc]) is not None
        if dc == 0:
            trailing = len(p.body) - len(p.body.rstrip(b"\x1b"))
            assert trailing % 2 == 0, "body ends with a dangling escape"
        if dc == 8:
            assert len(p.body) % 2 == 0
            assert not 0xDC00 <= int.from_bytes(p.body[:2], "big") <= 0xDFFF
            assert not 0xD800 <= int.from_bytes(p.body[-2:], "big") <= 0xDBFF
        if sar:
            assert p.udh == b"" and p.sar is not None and p.sar[1:] == (p.total, p.seq)
        else:
            assert p.sar is None
            c = concat_info(parse_udh(p.udh))
            assert c is not None and (c.total, c.seq, c.ref_bits) == (p.total, p.seq, ref_bits)
    # Greedy: a part is only closed when the next character would not fit.
    for p in parts[:-1]:
        assert len(p.body) > cap - (4 if dc == 8 else 2)
    # No more parts than needed with whole characters.
    assert sum(len(p.body) for p in parts) > SINGLE[dc]


# ---------------------------------------------------------------- round trips


@fast
@given(gsm_texts(), st.sampled_from([8, 16]))
def test_gsm_round_trip_with_extension_chars(text: str, ref_bits: int) -> None:
    _check(text, 0, ref_bits, split_text(text, 0, ref=0x42, ref_bits=ref_bits))


@fast
@given(latin1_texts, st.sampled_from([8, 16]))
def test_latin1_round_trip(text: str, ref_bits: int) -> None:
    _check(text, 3, ref_bits, split_text(text, 3, ref=0xFF, ref_bits=ref_bits))


@fast
@given(ascii_texts, st.sampled_from([8, 16]))
def test_ia5_round_trip(text: str, ref_bits: int) -> None:
    _check(text, 1, ref_bits, split_text(text, 1, ref=0, ref_bits=ref_bits))


@fast
@given(ucs2_texts, st.sampled_from([8, 16]))
def test_ucs2_round_trip_with_astral_chars(text: str, ref_bits: int) -> None:
    _check(text, 8, ref_bits, split_text(text, 8, ref=1, ref_bits=ref_bits))


@fast
@given(st.one_of(gsm_texts().map(lambda t: (t, 0)), ucs2_texts.map(lambda t: (t, 8))))
def test_sar_round_trip(case: tuple[str, int]) -> None:
    text, dc = case
    _check(text, dc, 16, split_sar(text, dc, ref=0xBEEF), sar=True)


@pytest.mark.parametrize("ref_bits", [8, 16])
@pytest.mark.parametrize("offset", range(140, 162))
@pytest.mark.parametrize("ext", list(EXTENSION))
def test_escape_pair_at_every_offset_near_the_cut(ref_bits: int, offset: int, ext: str) -> None:
    text = "a" * offset + ext + "b" * 200
    _check(text, 0, ref_bits, split_text(text, 0, ref=9, ref_bits=ref_bits))


@pytest.mark.parametrize("ref_bits", [8, 16])
@pytest.mark.parametrize("offset", range(60, 72))
def test_surrogate_pair_at_every_offset_near_the_cut(ref_bits: int, offset: int) -> None:
    text = "a" * offset + "😀" + "b" * 100
    _check(text, 8, ref_bits, split_text(text, 8, ref=9, ref_bits=ref_bits))


# ------------------------------------------------------------ hand vectors


def test_udh_8bit_vector() -> None:
    parts = split_text("a" * 200, 0, ref=0x2A)
    assert [p.udh for p in parts] == [
        bytes.fromhex("0500032a0201"),
        bytes.fromhex("0500032a0202"),
    ]
    assert [len(p.body) for p in parts] == [153, 47]
    assert parts[0].short_message == bytes.fromhex("0500032a0201") + b"a" * 153
    assert parts[0].udhi


def test_udh_16bit_vector() -> None:
    parts = split_text("a" * 200, 0, ref=0x1234, ref_bits=16)
    assert [p.udh for p in parts] == [
        bytes.fromhex("060804123402 01"),
        bytes.fromhex("060804123402 02"),
    ]
    assert [len(p.body) for p in parts] == [152, 48]


def test_concat_udh_vectors() -> None:
    assert concat_udh(0, 3, 3) == b"\x05\x00\x03\x00\x03\x03"
    assert concat_udh(0xFFFF, 255, 1, 16) == b"\x06\x08\x04\xff\xff\xff\x01"
    assert concat_udh(0x00AB, 2, 1, 16) == b"\x06\x08\x04\x00\xab\x02\x01"


def test_escape_pair_moves_whole_to_next_part() -> None:
    parts = split_text("a" * 152 + "€" + "b" * 10, 0, ref=7)
    assert parts[0].body == b"a" * 152
    assert parts[1].body == b"\x1be" + b"b" * 10


def test_gsm_wire_form_is_unpacked_septets() -> None:
    assert split_text("@£$€", 0, ref=0) == [Part(1, 1, b"\x00\x01\x02\x1be")]


def test_ucs2_vectors() -> None:
    parts = split_text("é" * 71, 8, ref=3)
    assert [len(p.body) // 2 for p in parts] == [67, 4]
    assert parts[0].body == "é".encode("utf-16-be") * 67
    emoji = split_text("😀" * 35 + "a", 8, ref=3)
    assert [p.body.decode("utf-16-be") for p in emoji] == ["😀" * 33, "😀😀a"]


@pytest.mark.parametrize(
    ("text", "dc", "n"),
    [
        ("", 0, 1),
        ("a" * 160, 0, 1),
        ("€" * 80, 0, 1),  # 160 septets
        ("a" * 161, 0, 2),
        ("a" * 159 + "€", 0, 2),  # 161 septets
        ("é" * 140, 3, 1),
        ("é" * 141, 3, 2),
        ("a" * 140, 1, 1),
        ("a" * 141, 1, 2),
        ("ж" * 70, 8, 1),
        ("😀" * 35, 8, 1),  # 70 code units
        ("ж" * 71, 8, 2),
        ("a" * 153 * 3, 0, 3),
        ("a" * (153 * 3 + 1), 0, 4),
    ],
)
def test_part_counts(text: str, dc: int, n: int) -> None:
    parts = split_text(text, dc, ref=1)
    assert len(parts) == n
    if n == 1:
        assert parts == [Part(1, 1, text.encode(CODEC[dc]))]


def test_sar_parts() -> None:
    parts = split_sar("a" * 200, 0, ref=0xBEEF)
    assert [(p.udh, p.sar, len(p.body)) for p in parts] == [
        (b"", (0xBEEF, 2, 1), 152),
        (b"", (0xBEEF, 2, 2), 48),
    ]
    assert not parts[0].udhi
    assert [len(p.body) for p in split_sar("a" * 200, 0, ref=5, ref_bits=8)] == [153, 47]
    assert split_sar("short", 0, ref=1) == [Part(1, 1, b"short")]


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "dc"),
    [
        ("ç", 0),  # not in GSM 03.38 (only Ç is)
        ("a\x1bb", 0),  # gsm0338 would emit a bare escape
        ("😀", 0),
        ("€", 3),
        ("é", 1),
        ("😀", 3),
        ("x", 4),  # 8-bit binary is not text
        ("x", 0xF0),
    ],
)
def test_unencodable_text(text: str, dc: int) -> None:
    with pytest.raises(SegmentError):
        split_text(text, dc, ref=0)
    with pytest.raises(SegmentError):
        split_sar(text, dc, ref=0)


def test_too_many_parts() -> None:
    assert len(split_text("a" * 153 * 255, 0, ref=0)) == 255
    with pytest.raises(SegmentError, match="more than 255 parts"):
        split_text("a" * (153 * 255 + 1), 0, ref=0)
    assert len(split_text("a" * 306, 0, ref=0, max_parts=2)) == 2
    with pytest.raises(SegmentError, match="more than 2 parts"):
        split_text("a" * 307, 0, ref=0, max_parts=2)
    with pytest.raises(SegmentError):
        split_text("a" * 161, 0, ref=0, max_parts=1)
    assert len(split_text("a" * 160, 0, ref=0, max_parts=1)) == 1


@pytest.mark.parametrize(
    ("ref", "ref_bits", "max_parts"),
    [(256, 8, 255), (-1, 8, 255), (0x10000, 16, 255), (0, 12, 255), (0, 8, 0), (0, 8, 256)],
)
def test_bad_arguments(ref: int, ref_bits: int, max_parts: int) -> None:
    with pytest.raises(ValueError):
        split_text("hi", 0, ref=ref, ref_bits=ref_bits, max_parts=max_parts)


def test_join_rejects_bad_sets() -> None:
    parts = split_text("a" * 400, 0, ref=1)
    with pytest.raises(SegmentError):
        join_parts(parts[:2], 0)  # part 3 missing
    with pytest.raises(SegmentError):
        join_parts([*parts, parts[0]], 0)  # duplicate
    with pytest.raises(SegmentError):
        join_parts([], 0)
    with pytest.raises(SegmentError, match="dangling"):
        join_parts([Part(1, 1, b"ab\x1b")], 0)
    with pytest.raises(SegmentError):
        join_parts([Part(1, 1, b"\x00a\xd8")], 8)


# ---------------------------------------------------------- choose_coding


@pytest.mark.parametrize(
    ("text", "dc"),
    [("", 0), ("Hello @£$ €[]{}^~\\|", 0), ("Ç", 0), ("ç", 8), ("a\x1b", 8), ("😀", 8)],
)
def test_choose_coding(text: str, dc: int) -> None:
    assert choose_coding(text) == dc


@fast
@given(
    st.text(
        st.sampled_from(GSM_BASIC + EXTENSION) | st.characters(codec="utf-8"),
        max_size=50,
    )
)
def test_choose_coding_agrees_with_split(text: str) -> None:
    dc = choose_coding(text)
    assert join_parts(split_text(text, dc, ref=0), dc) == text
    if dc == 8:
        with pytest.raises(SegmentError):
            split_text(text, 0, ref=0)


# ------------------------------------------------- smpplib's splitter, for contrast


def test_smpplib_make_parts_cuts_escape_pair_where_we_do_not() -> None:
    """smpplib cuts the GSM encoding every 153 octets regardless of escapes."""
    text = "a" * 152 + "€" + "b" * 10
    theirs, _, _ = smpp_gsm.make_parts(text)
    assert theirs[0].endswith(b"a\x1b")  # dangling escape, 0x65 ('e') starts part 2
    assert theirs[1][6:7] == b"e"
    ours = split_text(text, 0, ref=0)
    assert ours[0].body == b"a" * 152 and ours[1].body.startswith(b"\x1be")
    # Our join still reassembles their parts, since bodies are joined before decoding.
    mapped = [Part(i, len(theirs), p[6:]) for i, p in enumerate(theirs, start=1)]
    assert join_parts(mapped, 0) == text


def test_smpplib_make_parts_cuts_surrogate_pair_where_we_do_not() -> None:
    text = "a" * 66 + "😀" + "b" * 10
    theirs, _, _ = smpp_gsm.make_parts(text, smpp_consts.SMPP_ENCODING_ISO10646)
    assert theirs[0].endswith(b"\xd8\x3d")  # high surrogate alone at the end
    ours = split_text(text, 8, ref=0)
    assert ours[0].body == "a".encode("utf-16-be") * 66
    assert ours[1].body.decode("utf-16-be").startswith("😀")
