"""What a provider bind sends for one routed message (pure, no IO).

A whole multipart message goes out on one bind, in order, under a reference
that bind chose (its own counter), so two messages from different customers
or nodes that happened to pick the same reference never collide at the
handset. A provider configured for another concatenation framing (8- or
16-bit UDH, SAR TLVs) gets the text re-segmented (smsgw.segment: escape and
surrogate pairs never cut); a long `message_payload` is split into parts for
such a provider too. Binary messages and UDHs with other elements (ports,
national language) keep their customer's framing: re-cutting those would
change what the handset receives.

Every customer part keeps its own gateway id: each outgoing part carries the
ids whose receipt follows it. When the part count changes, customer part i of
N follows outgoing part ceil((i+1)·M/N) of M, so each id gets exactly one
receipt, and a single payload id follows the last part (the one that
completes the message on the handset).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from smsgw.message import AcceptedMessage
from smsgw.segment import (
    MAX_PARTS,
    Part,
    SegmentError,
    join_parts,
    split_sar,
    split_text,
)
from smsgw.smpp.udh import (
    IEI_CONCAT_8,
    IEI_CONCAT_16,
    Concat,
    UdhError,
    concat_info,
    parse_udh,
)

SEGMENTATION_MODES: Final = ("keep", "udh8", "udh16", "sar")
UDHI: Final = 0x40
_TEXT_CODINGS: Final = (0, 1, 3, 8)


@dataclass(frozen=True)
class OutPart:
    """One submit_sm for the provider and the gateway ids its receipt answers."""

    message: AcceptedMessage
    ids: tuple[str, ...]


def outgoing(
    parts: tuple[AcceptedMessage, ...],
    ids_by_seq: dict[int, list[str]],
    *,
    mode: str,
    ref: int,
) -> list[OutPart]:
    """The provider-side parts for a routed message (one part: `parts` of length 1)."""
    if mode not in SEGMENTATION_MODES:
        raise ValueError(f"segmentation mode {mode!r} is not one of {SEGMENTATION_MODES}")
    first = parts[0]
    if first.concat is None:
        return _single(first, mode, ref)
    wanted = _framing(mode)
    have = (first.concat.source, first.concat.ref_bits)
    ids = [tuple(ids_by_seq.get(m.concat.seq, [m.id])) for m in parts if m.concat]
    if wanted is not None and wanted != have and _recuttable(parts):
        try:
            text = join_parts([_segment(m) for m in parts], first.data_coding)
            cut = _split(text, first.data_coding, wanted, ref)
        except SegmentError:
            cut = []
        if cut:
            return _with_ids(first, cut, ids)
    return [OutPart(_with_ref(m, ref), part_ids) for m, part_ids in zip(parts, ids, strict=True)]


def _single(m: AcceptedMessage, mode: str, ref: int) -> list[OutPart]:
    wanted = _framing(mode)
    if wanted is None or m.message_payload is None or m.data_coding not in _TEXT_CODINGS:
        return [OutPart(m, (m.id,))]
    if m.esm_class & UDHI:
        return [OutPart(m, (m.id,))]  # a header we would have to re-cut: pass it on
    try:
        text = join_parts([Part(1, 1, m.message_payload)], m.data_coding)
        cut = _split(text, m.data_coding, wanted, ref)
    except SegmentError:
        return [OutPart(m, (m.id,))]
    return _with_ids(m, cut, [(m.id,)])


def _framing(mode: str) -> tuple[str, int] | None:
    return {"udh8": ("udh", 8), "udh16": ("udh", 16), "sar": ("sar", 16)}.get(mode)


def _recuttable(parts: tuple[AcceptedMessage, ...]) -> bool:
    """Text in a coding we can re-cut, and no UDH element besides concatenation."""
    if parts[0].data_coding not in _TEXT_CODINGS:
        return False
    for m in parts:
        if m.udh is not None:
            try:
                elements = parse_udh(m.udh)
            except UdhError:
                return False
            if any(iei not in (IEI_CONCAT_8, IEI_CONCAT_16) for iei, _ in elements):
                return False
    return True


def _segment(m: AcceptedMessage) -> Part:
    c = m.concat
    assert c is not None
    data = m.message_payload if m.message_payload is not None else m.short_message
    body = data[len(m.udh) :] if m.udh is not None else data
    return Part(c.seq, c.total, body)


def _split(text: str, data_coding: int, framing: tuple[str, int], ref: int) -> list[Part]:
    source, bits = framing
    ref &= (1 << bits) - 1
    if source == "sar":
        return split_sar(text, data_coding, ref=ref, ref_bits=bits, max_parts=MAX_PARTS)
    return split_text(text, data_coding, ref=ref, ref_bits=bits, max_parts=MAX_PARTS)


def _with_ids(
    template: AcceptedMessage, cut: list[Part], ids: list[tuple[str, ...]]
) -> list[OutPart]:
    """Outgoing parts built from `cut`, customer ids spread as the module says."""
    n, m = len(ids), len(cut)
    follows: list[list[str]] = [[] for _ in cut]
    for i, customer_ids in enumerate(ids):
        follows[-(-(i + 1) * m // n) - 1].extend(customer_ids)
    out = []
    for part, part_ids in zip(cut, follows, strict=True):
        concat = concat_info(parse_udh(part.udh)) if part.udh else None
        if part.sar is not None:
            concat = Concat(part.sar[0], part.sar[1], part.sar[2], 16, "sar")
        msg = dataclasses.replace(
            template,
            id=part_ids[0] if part_ids else template.id,
            esm_class=(template.esm_class & ~UDHI) | (UDHI if part.udhi else 0),
            short_message=part.short_message,
            message_payload=None,
            udh=part.udh or None,
            concat=concat,
        )
        out.append(OutPart(msg, tuple(part_ids)))
    return out


def _with_ref(m: AcceptedMessage, ref: int) -> AcceptedMessage:
    """The part with the bind's reference in place of the customer's."""
    c = m.concat
    assert c is not None
    new_ref = ref & ((1 << c.ref_bits) - 1)
    if c.source == "sar":
        return dataclasses.replace(m, concat=dataclasses.replace(c, ref=new_ref))
    assert m.udh is not None
    udh = bytearray(m.udh)
    pos = 1
    while pos < len(udh):  # find the concatenation IE (parse_udh checked the layout)
        iei, length = udh[pos], udh[pos + 1]
        if iei == IEI_CONCAT_8:
            udh[pos + 2] = new_ref
            break
        if iei == IEI_CONCAT_16:
            udh[pos + 2 : pos + 4] = new_ref.to_bytes(2, "big")
            break
        pos += 2 + length
    data = m.message_payload if m.message_payload is not None else m.short_message
    user_data = bytes(udh) + data[len(udh) :]
    return dataclasses.replace(
        m,
        udh=bytes(udh),
        concat=dataclasses.replace(c, ref=new_ref),
        short_message=user_data if m.message_payload is None else m.short_message,
        message_payload=user_data if m.message_payload is not None else None,
    )
