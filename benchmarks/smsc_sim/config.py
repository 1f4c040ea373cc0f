"""SimConfig: every knob of the simulated SMSC as one frozen value.

Limits and quirks are data so a test states the provider it plays in one
line, and the CLI maps flags onto the same fields.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from smsgw.smpp import CommandStatus

IdFormat = Literal["hex", "decimal"]

# stat text -> (message_state TLV value, network error code) as real SMSCs send them.
OUTCOMES: dict[str, tuple[int, int]] = {
    "ENROUTE": (1, 0),
    "DELIVRD": (2, 0),
    "EXPIRED": (3, 0),
    "DELETED": (4, 0),
    "UNDELIV": (5, 1),
    "ACCEPTD": (6, 0),
    "UNKNOWN": (7, 0),
    "REJECTD": (8, 11),
}


@dataclass(frozen=True)
class SimConfig:
    """How the simulated provider behaves; the defaults are a well-behaved SMSC."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port, read it back from SmscSimulator.port
    # SMPP over TLS: the server context (certificate and key loaded); None: plain TCP.
    tls: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    system_id: str = "smsc"
    password: str = "pw"
    # Extra accounts (system_id -> password) besides system_id/password.
    accounts: Mapping[str, str] = field(default_factory=dict)
    max_binds: int | None = None  # bound sessions per system_id
    max_binds_status: CommandStatus = CommandStatus.ESME_RALYBND  # or ESME_RBINDFAIL
    # False: bind_transceiver is refused (ESME_RBINDFAIL), like SMPP 3.3 SMSCs and the
    # many 3.4 ones that only take a transmitter and a receiver bind.
    transceiver: bool = True
    tps_limit: int | None = None  # accepted submits per 1-s window, over all binds
    receipt_delay: float = 0.5  # seconds after submit_sm_resp; 0 = at once
    receipt_before_resp: bool = False  # the race: deliver_sm on the wire before the resp
    outcomes: Mapping[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    id_format: IdFormat = "hex"  # message ids in submit_sm_resp
    receipt_id_format: IdFormat | None = None  # quirk: receipts use another form
    receipt_tlvs: bool = True  # False: text only, like SMSCs that omit the TLVs
    # The receipted_message_id TLV in the submit_sm_resp form (SMPP 3.4 §5.3.2.12)
    # rather than in the receipt text's form.
    tlv_submit_id: bool = False
    # Quirk: a second, contradicting receipt (this stat) a moment after the first,
    # as some SMSCs do after a late network report.
    second_receipt: str | None = None
    window: int = 10  # outstanding deliver_sm per bind
    retry_delay: float = 1.0  # before resending a deliver_sm answered with an error
    mo_rate: float = 0.0  # generated MO messages per second (to receiver binds)
    permanent_error: CommandStatus | None = None  # answer every submit with this
    reject_rate: float = 0.0  # share of submits answered with reject_status
    reject_status: CommandStatus = CommandStatus.ESME_RSUBMITFAIL
    enquire_link_interval: float = 30.0
    inactivity_timeout: float = 120.0
    response_timeout: float = 10.0  # for our deliver_sm
    record_received: bool = True  # keep every accepted submit in `received`
    seed: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.outcomes) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes {sorted(unknown)}; use {sorted(OUTCOMES)}")
        if self.second_receipt is not None and self.second_receipt not in OUTCOMES:
            raise ValueError(
                f"unknown second_receipt {self.second_receipt!r}; use {sorted(OUTCOMES)}"
            )
        if not self.outcomes or sum(self.outcomes.values()) <= 0:
            raise ValueError("outcomes need a positive total weight")
        if self.window < 1:
            raise ValueError("window must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (statuses as hex, no passwords)."""
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if key in {"password", "accounts"}:
                continue
            if isinstance(value, CommandStatus):
                out[key] = f"0x{int(value):02X}"
            elif isinstance(value, Mapping):
                out[key] = dict(value)
            else:
                out[key] = value
        return out

    def credentials(self) -> dict[str, str]:
        """system_id -> password for every account the simulator accepts."""
        return {self.system_id: self.password, **self.accounts}


def parse_mix(text: str) -> dict[str, float]:
    """`"DELIVRD=0.9,UNDELIV=0.1"` (also `:`) -> {"DELIVRD": 0.9, "UNDELIV": 0.1}."""
    mix: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = item.replace(":", "=").partition("=")
        mix[name.strip()] = float(weight) if sep else 1.0
    return mix
