"""User Data Header helpers (3GPP TS 23.040 9.2.3.24) and concatenation info.

Kept apart from validation because the router's multipart assembly and the
provider connectors' splitting need the same reading of a UDH.
"""

from __future__ import annotations

from dataclasses import dataclass

IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08

InformationElement = tuple[int, bytes]


class UdhError(ValueError):
    """The UDH does not fit the message or its elements overrun it."""


@dataclass(frozen=True, slots=True)
class Concat:
    """One part of a concatenated message; `ref_bits` is 8 or 16 (SAR: 16)."""

    ref: int
    total: int
    seq: int
    ref_bits: int
    source: str  # "udh" or "sar"

    @property
    def valid(self) -> bool:
        return self.total >= 1 and 1 <= self.seq <= self.total


def split_udh(user_data: bytes) -> tuple[bytes, bytes]:
    """(udh including its UDHL octet, rest) of a message sent with UDHI set."""
    if not user_data:
        raise UdhError("UDHI set but the message is empty")
    end = 1 + user_data[0]
    if end > len(user_data):
        raise UdhError(f"UDHL {user_data[0]} exceeds the {len(user_data) - 1} octets that follow")
    return user_data[:end], user_data[end:]


def parse_udh(udh: bytes) -> list[InformationElement]:
    """Information elements of `udh` (which starts with its UDHL octet)."""
    if not udh or udh[0] != len(udh) - 1:
        raise UdhError("UDHL does not match the header length")
    elements: list[InformationElement] = []
    pos = 1
    while pos < len(udh):
        if pos + 2 > len(udh):
            raise UdhError("truncated information element header")
        iei, length = udh[pos], udh[pos + 1]
        data = udh[pos + 2 : pos + 2 + length]
        if len(data) != length:
            raise UdhError(f"IE 0x{iei:02X} overruns the UDH")
        elements.append((iei, data))
        pos += 2 + length
    return elements


def concat_info(elements: list[InformationElement]) -> Concat | None:
    """Concatenation IE (0x00 8-bit ref, 0x08 16-bit ref), if any."""
    for iei, data in elements:
        if iei == IEI_CONCAT_8 and len(data) == 3:
            return Concat(data[0], data[1], data[2], 8, "udh")
        if iei == IEI_CONCAT_16 and len(data) == 4:
            return Concat(int.from_bytes(data[:2], "big"), data[2], data[3], 16, "udh")
        if iei in (IEI_CONCAT_8, IEI_CONCAT_16):
            raise UdhError(f"concatenation IE 0x{iei:02X} with length {len(data)}")
    return None
