"""SMPP command_status values as one enum that knows what is retriable.

`CommandStatus(code)` never raises for a 32-bit code: vendor codes (0x400..)
and reserved values come back as *pseudo-members* built on the fly (not
cached, not listed by iteration) so every status in the system has one type,
compares equal to its int, and answers `retriable` / `description`.
"""

from __future__ import annotations

import enum

_MAX_CODE = 0xFFFFFFFF


class CommandStatus(enum.IntEnum):
    """SMPP 3.4 command_status (plus ESME_RINVDCS from SMPP 5.0)."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF
    # SMPP 5.0; 3.4 has no data_coding status and peers accept this one.
    ESME_RINVDCS = 0x104

    @classmethod
    def _missing_(cls, value: object) -> CommandStatus | None:
        if isinstance(value, int) and 0 <= value <= _MAX_CODE:
            pseudo = int.__new__(cls, value)
            pseudo._name_ = f"UNKNOWN_0x{value:08X}"
            pseudo._value_ = value
            return pseudo
        return None

    @classmethod
    def for_code(cls, code: int) -> CommandStatus:
        """Member for `code`; a pseudo-member for vendor/reserved codes."""
        return cls(code)

    @property
    def is_known(self) -> bool:
        return self._name_.startswith("ESME_")

    @property
    def is_ok(self) -> bool:
        return self.value == 0

    @property
    def retriable(self) -> bool:
        """True when resending the same PDU later can succeed."""
        return self.value in _RETRIABLE

    @property
    def description(self) -> str:
        if not self.is_known:
            return f"Vendor-specific or reserved status 0x{self.value:08X}"
        return _DESCRIPTIONS.get(self.value, self._name_)


_RETRIABLE = frozenset({0x08, 0x14, 0x58, 0x64})

_DESCRIPTIONS: dict[int, str] = {
    0x00: "No error",
    0x01: "Message length is invalid",
    0x02: "Command length is invalid",
    0x03: "Invalid command ID",
    0x04: "Incorrect bind status for given command",
    0x05: "ESME already in bound state",
    0x06: "Invalid priority flag",
    0x07: "Invalid registered delivery flag",
    0x08: "System error",
    0x0A: "Invalid source address",
    0x0B: "Invalid destination address",
    0x0C: "Message ID is invalid",
    0x0D: "Bind failed",
    0x0E: "Invalid password",
    0x0F: "Invalid system ID",
    0x11: "Cancel SM failed",
    0x13: "Replace SM failed",
    0x14: "Message queue full",
    0x15: "Invalid service type",
    0x33: "Invalid number of destinations",
    0x34: "Invalid distribution list name",
    0x40: "Destination flag is invalid (submit_multi)",
    0x42: "Invalid submit with replace request",
    0x43: "Invalid esm_class field data",
    0x44: "Cannot submit to distribution list",
    0x45: "submit_sm or submit_multi failed",
    0x48: "Invalid source address TON",
    0x49: "Invalid source address NPI",
    0x50: "Invalid destination address TON",
    0x51: "Invalid destination address NPI",
    0x53: "Invalid system_type field",
    0x54: "Invalid replace_if_present flag",
    0x55: "Invalid number of messages",
    0x58: "Throttling error (ESME has exceeded allowed message limits)",
    0x61: "Invalid scheduled delivery time",
    0x62: "Invalid message validity period (expiry time)",
    0x63: "Predefined message invalid or not found",
    0x64: "ESME receiver temporary app error code",
    0x65: "ESME receiver permanent app error code",
    0x66: "ESME receiver reject message error code",
    0x67: "query_sm request failed",
    0xC0: "Error in the optional part of the PDU body",
    0xC1: "Optional parameter not allowed",
    0xC2: "Invalid parameter length",
    0xC3: "Expected optional parameter missing",
    0xC4: "Invalid optional parameter value",
    0xFE: "Delivery failure (data_sm_resp)",
    0xFF: "Unknown error",
    0x104: "Invalid data coding scheme (SMPP 5.0)",
}
