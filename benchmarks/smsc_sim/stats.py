"""What the simulator saw, in a form tests can assert on and the CLI can dump."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from smsgw.smpp import BindMode
from smsgw.smpp.pdu import Tlv


@dataclass(slots=True)
class SimStats:
    """Counters; per-second maps are keyed by whole seconds since start()."""

    binds: int = 0
    bind_failures: int = 0
    submits: int = 0
    accepted: int = 0
    throttled: int = 0
    rejected: int = 0
    receipts_sent: int = 0  # deliver_sm receipts written (retries included)
    receipts_acked: int = 0  # ... answered with status 0
    deliver_errors: int = 0  # deliver_sm answered with an error or timed out
    mo_sent: int = 0
    mo_acked: int = 0
    connections: int = 0
    unbinds: int = 0  # unbind requests received from the ESME (a polite goodbye)
    per_second_submits: Counter[int] = field(default_factory=Counter)
    per_second_accepted: Counter[int] = field(default_factory=Counter)
    rejected_by_status: Counter[int] = field(default_factory=Counter)

    @property
    def tps_max(self) -> int:
        """Most submits accepted in any 1-s window."""
        return max(self.per_second_accepted.values(), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "binds": self.binds,
            "bind_failures": self.bind_failures,
            "connections": self.connections,
            "unbinds": self.unbinds,
            "submits": self.submits,
            "accepted": self.accepted,
            "throttled": self.throttled,
            "rejected": self.rejected,
            "rejected_by_status": {f"0x{k:02X}": v for k, v in self.rejected_by_status.items()},
            "receipts_sent": self.receipts_sent,
            "receipts_acked": self.receipts_acked,
            "deliver_errors": self.deliver_errors,
            "mo_sent": self.mo_sent,
            "mo_acked": self.mo_acked,
            "tps_max": self.tps_max,
            "per_second_accepted": dict(sorted(self.per_second_accepted.items())),
            "per_second_submits": dict(sorted(self.per_second_submits.items())),
        }


@dataclass(frozen=True, slots=True)
class ReceivedSubmit:
    """One accepted submit as the simulated provider stored it."""

    source: str
    dest: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes  # message_payload for data_sm / when sm_length is 0
    tlvs: tuple[Tlv, ...]
    message_id: str
    received_at: float  # loop.time()
    bind_id: int
    system_id: str
    bind_mode: BindMode | None
