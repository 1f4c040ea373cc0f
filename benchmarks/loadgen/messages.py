"""Message bodies and the stream of submit_sm field sets the load generator sends.

Bodies are encoded and split once at start-up; per message only the
destination, the concatenation reference and the UDH change. GSM text is
split by whole characters, so an extension character (0x1B escape pair, e.g.
the euro sign) is never cut in two, unlike smpplib's make_parts. UCS2 is
split on UTF-16 code units without cutting a surrogate pair.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

from smsgw.smpp.pdu import FieldValue

GSM_SINGLE, GSM_PART = 160, 153  # septets (escape pairs count two)
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units
ESM_UDHI = 0x40
DC_GSM, DC_UCS2 = 0, 8

GSM_SHORT = "Load test: price 5€ [ok] {x} ~^| \\ done"
_GSM_HEAD = "Long GSM message with extension characters € [ ] { } ^ ~ | \\ and then: "
# A euro sign right on the 153-septet boundary: a naive splitter cuts its escape pair.
GSM_LONG = (
    _GSM_HEAD
    + "x" * (GSM_PART - 1 - len(_GSM_HEAD.encode("gsm03.38")))
    + "€ and it goes on to need three parts of one hundred and fifty three septets, "
    "because load tests should carry concatenated messages as real traffic does. "
    + "y" * 80
    + " €nd."
)
UCS2_SHORT = "Привет! Тест нагрузки ✓ 你好"
UCS2_LONG = (
    "Длинное сообщение в UCS2: оно не помещается в одну часть из семидесяти символов, "
    "поэтому делится на части по шестьдесят семь символов. 你好世界 ✓ "
    "Проверяем, что суррогатные пары не разрезаются: 😀😀😀 конец."
)


def gsm_split(text: str) -> list[bytes]:
    """Unpacked GSM 03.38 septets: one part if it fits 160, else 153-septet parts."""
    chars = [c.encode("gsm03.38") for c in text]
    whole = b"".join(chars)
    if len(whole) <= GSM_SINGLE:
        return [whole]
    parts: list[bytes] = []
    current = bytearray()
    for char in chars:
        if len(current) + len(char) > GSM_PART:
            parts.append(bytes(current))
            current.clear()
        current += char
    parts.append(bytes(current))
    return parts


def ucs2_split(text: str) -> list[bytes]:
    """UTF-16BE: one part if it fits 70 code units, else 67-unit parts."""
    data = text.encode("utf-16-be")
    if len(data) <= 2 * UCS2_SINGLE:
        return [data]
    parts: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = min(pos + 2 * UCS2_PART, len(data))
        if end < len(data) and 0xD8 <= data[end - 2] <= 0xDB:  # high surrogate last
            end -= 2
        parts.append(data[pos:end])
        pos = end
    return parts


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """8-bit reference concatenation UDH: 05 00 03 ref total seq."""
    return bytes((5, 0, 3, ref & 0xFF, total, seq))


@dataclass(frozen=True, slots=True)
class Template:
    encoding: str
    data_coding: int
    parts: tuple[bytes, ...]


TEMPLATES: dict[tuple[str, bool], Template] = {
    ("gsm", False): Template("gsm", DC_GSM, tuple(gsm_split(GSM_SHORT))),
    ("gsm", True): Template("gsm", DC_GSM, tuple(gsm_split(GSM_LONG))),
    ("ucs2", False): Template("ucs2", DC_UCS2, tuple(ucs2_split(UCS2_SHORT))),
    ("ucs2", True): Template("ucs2", DC_UCS2, tuple(ucs2_split(UCS2_LONG))),
}


@dataclass(slots=True)
class Part:
    fields: dict[str, FieldValue]
    wants_receipt: bool


class MessageSource:
    """Yields submit_sm field sets, part after part, for `limit` messages (None: endless)."""

    def __init__(
        self,
        *,
        mix: Mapping[str, float],
        multipart_share: float,
        registered_delivery: int,
        receipt_all_parts: bool,
        source: str,
        dest_prefix: str,
        limit: int | None,
        seed: int | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        total = sum(mix.values())
        self._gsm_share = mix.get("gsm", 0.0) / total
        self._multipart_share = multipart_share
        self._rd = registered_delivery
        self._all_parts = receipt_all_parts
        self._source = source
        self._dest_prefix = dest_prefix
        self._limit = limit
        self.messages = 0
        self.submits = 0
        self._ref = 0
        self._queue: list[Part] = []  # remaining parts of the current message, reversed

    @property
    def mid_message(self) -> bool:
        """Parts of the current multipart message are still to be sent."""
        return bool(self._queue)

    @property
    def exhausted(self) -> bool:
        return not self._queue and self._limit is not None and self.messages >= self._limit

    def next_part(self) -> Part | None:
        if not self._queue:
            if self._limit is not None and self.messages >= self._limit:
                return None
            self._queue = self._message()
        self.submits += 1
        return self._queue.pop()

    def _message(self) -> list[Part]:
        rng = self._rng
        encoding = "gsm" if rng.random() < self._gsm_share else "ucs2"
        multipart = self._multipart_share > 0 and rng.random() < self._multipart_share
        template = TEMPLATES[encoding, multipart]
        self.messages += 1
        dest = f"{self._dest_prefix}{self.messages % 10_000_000:07d}"
        total = len(template.parts)
        self._ref = (self._ref + 1) & 0xFF
        parts: list[Part] = []
        for seq, body in enumerate(template.parts, 1):
            wants = bool(self._rd) and (seq == 1 or self._all_parts)
            fields: dict[str, FieldValue] = {
                "source_addr_ton": 5,
                "source_addr_npi": 0,
                "source_addr": self._source,
                "dest_addr_ton": 1,
                "dest_addr_npi": 1,
                "destination_addr": dest,
                "esm_class": ESM_UDHI if total > 1 else 0,
                "registered_delivery": self._rd if wants else 0,
                "data_coding": template.data_coding,
                "short_message": concat_udh(self._ref, total, seq) + body if total > 1 else body,
            }
            parts.append(Part(fields, wants))
        parts.reverse()
        return parts
