"""The typed PDU model shared by codec, session and submission checks.

smpplib's command objects are untyped, carry a shared client singleton and
keep C-strings as bytes after parsing but want str for generating; so the
rest of smsgw sees this small frozen value instead, and only `codec` knows
smpplib. C-Octet strings are kept as the exact wire bytes (NUL stripped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from smsgw.smpp.status import CommandStatus

HEADER_SIZE = 16
RESPONSE_BIT = 0x80000000
MAX_SEQUENCE = 0x7FFFFFFF

COMMAND_IDS: dict[str, int] = {
    "generic_nack": 0x80000000,
    "bind_receiver": 0x00000001,
    "bind_receiver_resp": 0x80000001,
    "bind_transmitter": 0x00000002,
    "bind_transmitter_resp": 0x80000002,
    "query_sm": 0x00000003,
    "query_sm_resp": 0x80000003,
    "submit_sm": 0x00000004,
    "submit_sm_resp": 0x80000004,
    "deliver_sm": 0x00000005,
    "deliver_sm_resp": 0x80000005,
    "unbind": 0x00000006,
    "unbind_resp": 0x80000006,
    "replace_sm": 0x00000007,
    "replace_sm_resp": 0x80000007,
    "cancel_sm": 0x00000008,
    "cancel_sm_resp": 0x80000008,
    "bind_transceiver": 0x00000009,
    "bind_transceiver_resp": 0x80000009,
    "outbind": 0x0000000B,
    "enquire_link": 0x00000015,
    "enquire_link_resp": 0x80000015,
    "submit_multi": 0x00000021,
    "submit_multi_resp": 0x80000021,
    "alert_notification": 0x00000102,
    "data_sm": 0x00000103,
    "data_sm_resp": 0x80000103,
}
COMMAND_NAMES: dict[int, str] = {v: k for k, v in COMMAND_IDS.items()}

# Requests that have no response PDU: a refusal must use generic_nack.
NO_RESPONSE = frozenset({"outbind", "alert_notification"})


def response_name(command: str) -> str:
    """Name of the response to request `command` (generic_nack if none)."""
    return "generic_nack" if command in NO_RESPONSE else command + "_resp"


@dataclass(frozen=True, slots=True)
class DestAddress:
    """One submit_multi destination: flag 1 = SME address, 2 = DL name."""

    address: bytes
    ton: int = 0
    npi: int = 0
    flag: int = 1


@dataclass(frozen=True, slots=True)
class UnsuccessSme:
    """One submit_multi_resp unsuccess_sme entry."""

    address: bytes
    ton: int
    npi: int
    error_status: int


FieldValue = int | bytes | str | tuple[DestAddress, ...] | tuple[UnsuccessSme, ...]
Tlv = tuple[int, bytes]


@dataclass(frozen=True)
class Pdu:
    """One SMPP PDU: header values, mandatory fields by name, raw TLVs in wire order.

    `str` values are accepted when building PDUs and are encoded as Latin-1
    (byte-preserving); decoded PDUs always hold `bytes`.
    """

    command: str
    sequence: int
    status: int = 0
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    tlvs: tuple[Tlv, ...] = ()

    @property
    def command_id(self) -> int:
        return COMMAND_IDS[self.command]

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def command_status(self) -> CommandStatus:
        return CommandStatus.for_code(self.status)

    def get_int(self, name: str, default: int = 0) -> int:
        value = self.fields.get(name)
        return value if isinstance(value, int) else default

    def get_bytes(self, name: str) -> bytes:
        value = self.fields.get(name)
        if isinstance(value, str):
            return value.encode("latin-1")
        return value if isinstance(value, bytes) else b""

    def get_str(self, name: str) -> str:
        """A C-Octet string field as text (Latin-1: never fails, round-trips)."""
        return self.get_bytes(name).decode("latin-1")

    def tlv(self, tag: int) -> bytes | None:
        """Value of the first TLV with `tag`, or None."""
        for t, value in self.tlvs:
            if t == tag:
                return value
        return None

    def dests(self) -> tuple[DestAddress, ...]:
        value = self.fields.get("dest_addresses", ())
        return (
            tuple(d for d in value if isinstance(d, DestAddress))
            if isinstance(value, tuple)
            else ()
        )

    def unsuccess(self) -> tuple[UnsuccessSme, ...]:
        value = self.fields.get("unsuccess_smes", ())
        return (
            tuple(u for u in value if isinstance(u, UnsuccessSme))
            if isinstance(value, tuple)
            else ()
        )


class DecodeError(Exception):
    """A frame that cannot become a Pdu; `status` says what to answer.

    `sequence`/`command_id` are set when the header was readable, so the
    session can answer with the right response (or generic_nack).
    """

    def __init__(
        self,
        status: CommandStatus,
        detail: str,
        *,
        sequence: int | None = None,
        command_id: int | None = None,
    ) -> None:
        super().__init__(f"{status.name}: {detail}")
        self.status = status
        self.detail = detail
        self.sequence = sequence
        self.command_id = command_id


class EncodeError(ValueError):
    """A Pdu we built locally cannot be encoded (a bug on our side)."""
