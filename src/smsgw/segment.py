"""Split a whole text into SMS parts, and join parts back (pure, no IO).

Used to re-segment an assembled message for a provider that wants it split
differently, and to split a long `message_payload` into short_message parts.

Bodies are in SMPP wire form: data_coding 0 is GSM 03.38 *unpacked* (one
septet per octet, extension characters as 0x1B + septet), 1 is IA5/ASCII,
3 is Latin-1 and 8 is UCS2 (UTF-16BE). Parts are cut only between whole
characters, so an escape pair or a UTF-16 surrogate pair never straddles two
parts: a handset that shows parts that failed to concatenate, or a provider
that decodes each part on its own, still sees valid text.

Hand-written on purpose: python-smpplib's `gsm.make_parts` cuts the encoded
octets every 153/67 units and so splits an escape pair (``"a"*152 + "€"``)
or a surrogate pair (``"a"*66 + "😀"``) across parts; tests/unit/
test_segment.py shows both. The character encoding itself is the gsm0338
library's codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import gsm0338  # type: ignore[import-untyped]  # registers the "gsm03.38" codec

assert gsm0338  # imported for its codec registration side effect

GSM: Final = 0
IA5: Final = 1
LATIN1: Final = 3
UCS2: Final = 8

_CODECS: Final[dict[int, str]] = {
    GSM: "gsm03.38",
    IA5: "ascii",
    LATIN1: "latin-1",
    UCS2: "utf-16-be",
}
# Octets of user data left for the body: alone, after an 8-bit concat UDH
# (6 octets: 05 00 03 ref total seq) and after a 16-bit one (7 octets). GSM
# counts septets (one per octet unpacked): 160 - ceil(6*8/7) = 153, and 152.
_CAPACITY: Final[dict[int, tuple[int, int, int]]] = {
    GSM: (160, 153, 152),
    IA5: (140, 134, 133),
    LATIN1: (140, 134, 133),
    UCS2: (140, 134, 132),  # 70 / 67 / 66 UTF-16 code units
}
MAX_PARTS: Final = 255  # the total field of the concat IE and SAR is one octet
_ESC: Final = 0x1B


class SegmentError(ValueError):
    """The text cannot be carried in that data_coding, or needs too many parts."""


@dataclass(frozen=True, slots=True)
class Part:
    """One SMS of a (possibly) concatenated message.

    `udh` includes its UDHL octet and is empty for a single SMS or SAR parts;
    `sar` is (sar_msg_ref_num, sar_total_segments, sar_segment_seqnum) when
    the concatenation travels in TLVs instead of a UDH.
    """

    seq: int
    total: int
    body: bytes
    udh: bytes = b""
    sar: tuple[int, int, int] | None = None

    @property
    def short_message(self) -> bytes:
        """What goes into short_message; set esm_class UDHI (0x40) if `udhi`."""
        return self.udh + self.body

    @property
    def udhi(self) -> bool:
        return bool(self.udh)


def concat_udh(ref: int, total: int, seq: int, ref_bits: int = 8) -> bytes:
    """Concatenation UDH (with UDHL): IEI 0x00 for 8-bit refs, 0x08 for 16-bit."""
    _check_ref(ref, ref_bits)
    if not 1 <= seq <= total <= MAX_PARTS:
        raise ValueError(f"seq {seq} / total {total} outside 1..{MAX_PARTS}")
    if ref_bits == 8:
        return bytes((0x05, 0x00, 0x03, ref, total, seq))
    return bytes((0x06, 0x08, 0x04, ref >> 8, ref & 0xFF, total, seq))


def split_text(
    text: str, data_coding: int, *, ref: int, ref_bits: int = 8, max_parts: int = MAX_PARTS
) -> list[Part]:
    """Parts of `text` with concatenation UDHs (none if it fits one SMS)."""
    chunks = _bodies(text, data_coding, ref, ref_bits, max_parts)
    if len(chunks) == 1:
        return [Part(1, 1, chunks[0])]
    total = len(chunks)
    return [
        Part(seq, total, body, udh=concat_udh(ref, total, seq, ref_bits))
        for seq, body in enumerate(chunks, start=1)
    ]


def split_sar(
    text: str, data_coding: int, *, ref: int, ref_bits: int = 16, max_parts: int = MAX_PARTS
) -> list[Part]:
    """Parts of `text` with SAR TLV values instead of a UDH (none if one SMS).

    The SMSC turns SAR into a UDH on the air interface, so each body leaves
    room for it: `ref_bits` 16 (default; sar_msg_ref_num is 16-bit) gives
    152/133/66 per part, 8 gives 153/134/67 for providers known to map refs
    below 256 to the 8-bit IE.
    """
    chunks = _bodies(text, data_coding, ref, ref_bits, max_parts)
    if len(chunks) == 1:
        return [Part(1, 1, chunks[0])]
    total = len(chunks)
    return [
        Part(seq, total, body, sar=(ref, total, seq)) for seq, body in enumerate(chunks, start=1)
    ]


def join_parts(parts: list[Part], data_coding: int) -> str:
    """Text of `parts` (any order), the inverse of split_text / split_sar.

    Bodies are concatenated before decoding, so parts from splitters that do
    cut escape or surrogate pairs still join correctly.
    """
    if not parts:
        raise SegmentError("no parts")
    ordered = sorted(parts, key=lambda p: p.seq)
    total = ordered[0].total
    if [p.seq for p in ordered] != list(range(1, total + 1)) or any(
        p.total != total for p in ordered
    ):
        raise SegmentError(f"parts {[(p.seq, p.total) for p in parts]} are not 1..{total}")
    data = b"".join(p.body for p in ordered)
    codec = _codec(data_coding)
    if codec == "gsm03.38" and (len(data) - len(data.rstrip(bytes((_ESC,))))) % 2:
        raise SegmentError("GSM text ends with a dangling 0x1B escape")  # gsm0338 drops it
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise SegmentError(f"bodies do not decode as {codec}: {exc}") from None


def choose_coding(text: str) -> int:
    """0 (GSM 03.38) if every character has a GSM septet or escape, else 8 (UCS2)."""
    try:
        for ch in text:
            _encode_char(ch, "gsm03.38")
    except SegmentError:
        return UCS2
    return GSM


def _bodies(text: str, data_coding: int, ref: int, ref_bits: int, max_parts: int) -> list[bytes]:
    """The part bodies of `text`, sized for a concatenation header of `ref_bits`."""
    _check_ref(ref, ref_bits)
    return _chunks(text, data_coding, _capacity(data_coding, ref_bits), max_parts)


def _check_ref(ref: int, ref_bits: int) -> None:
    if ref_bits not in (8, 16):
        raise ValueError(f"ref_bits must be 8 or 16, not {ref_bits}")
    if not 0 <= ref < 1 << ref_bits:
        raise ValueError(f"ref {ref} does not fit {ref_bits} bits")


def _codec(data_coding: int) -> str:
    try:
        return _CODECS[data_coding]
    except KeyError:
        raise SegmentError(
            f"data_coding 0x{data_coding:02X} is not a supported text coding"
        ) from None


def _capacity(data_coding: int, ref_bits: int) -> tuple[int, int]:
    """(octets for a single SMS, octets per part) for this coding and ref size."""
    _codec(data_coding)
    single, part8, part16 = _CAPACITY[data_coding]
    return single, part8 if ref_bits == 8 else part16


def _encode_char(ch: str, codec: str) -> bytes:
    """Wire form of one character: the unit that must never be cut."""
    if codec == "gsm03.38" and ch == "\x1b":
        # gsm0338 encodes U+001B as a bare escape, which decodes to nothing.
        raise SegmentError("U+001B (escape) is not a GSM 03.38 character")
    try:
        return ch.encode(codec)
    except UnicodeEncodeError:
        raise SegmentError(f"{ch!r} (U+{ord(ch):04X}) cannot be encoded as {codec}") from None


def _chunks(text: str, data_coding: int, capacity: tuple[int, int], max_parts: int) -> list[bytes]:
    """Bodies: one if the text fits a single SMS, else greedy whole-character parts."""
    if not 1 <= max_parts <= MAX_PARTS:
        raise ValueError(f"max_parts must be 1..{MAX_PARTS}, not {max_parts}")
    codec = _codec(data_coding)
    cache: dict[str, bytes] = {}
    units: list[bytes] = []
    for ch in text:
        unit = cache.get(ch)
        if unit is None:
            unit = cache[ch] = _encode_char(ch, codec)
        units.append(unit)
    single, per_part = capacity
    if sum(map(len, units)) <= single:
        return [b"".join(units)]
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for unit in units:
        if size + len(unit) > per_part:
            chunks.append(b"".join(current))
            current, size = [], 0
            if len(chunks) >= max_parts:
                raise SegmentError(f"text needs more than {max_parts} parts")
        current.append(unit)
        size += len(unit)
    chunks.append(b"".join(current))
    return chunks
