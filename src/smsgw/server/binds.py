"""The binds open on this node, per customer: for max-binds and for delivery."""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from smsgw.smpp.events import BindMode


class BoundSession(Protocol):
    bind_id: str
    system_id: str | None
    mode: BindMode | None

    def close_for(self, reason: str) -> None: ...


class BindRegistry:
    def __init__(self) -> None:
        self._by_customer: dict[str, dict[str, BoundSession]] = defaultdict(dict)

    def count(self, system_id: str) -> int:
        return len(self._by_customer.get(system_id, {}))

    def add(self, session: BoundSession) -> None:
        assert session.system_id is not None
        self._by_customer[session.system_id][session.bind_id] = session

    def remove(self, session: BoundSession) -> None:
        if session.system_id is None:
            return
        binds = self._by_customer.get(session.system_id)
        if binds is not None:
            binds.pop(session.bind_id, None)
            if not binds:
                del self._by_customer[session.system_id]

    def sessions(self, system_id: str) -> list[BoundSession]:
        return list(self._by_customer.get(system_id, {}).values())

    def receivers(self, system_id: str) -> list[BoundSession]:
        """Binds that may receive deliver_sm: receiver and transceiver."""
        return [s for s in self.sessions(system_id) if s.mode in (BindMode.RX, BindMode.TRX)]

    def customers(self) -> dict[str, int]:
        return {c: len(b) for c, b in self._by_customer.items()}
