"""Route lookup in memory: which provider carries an MT, which customer gets an MO.

Pure logic, no IO: tables are built from rows loaded by ``smsgw.db.routes``
and rebuilt whole on each configuration change, so a lookup never sees a
half-applied change.

Number normalisation (the one rule, applied to route prefixes and to
addresses alike): strip surrounding whitespace and one leading ``+``. We do
*not* strip ``00``: the international access code differs by country (00,
011, 010, 0011…) and short codes or national numbers may start with zeros,
so guessing would misroute. Customers send international numbers as digits
(``+`` tolerated); routes are written the same way.

MT precedence, best first:

1. the longest destination prefix that matches (``''`` is the catch-all);
2. at that prefix, a route for this customer beats a route for everyone;
3. then a matching source prefix beats none, a longer one a shorter one;
4. then the higher priority.

So a generic route for ``4479`` beats a customer-specific route for ``44``:
the destination decides first. Routes whose source prefix does not match
are skipped, and the lookup falls through to shorter prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MtRoute:
    """An MT route as the table reads it; ``smsgw.db.routes`` stores it (and imports it
    from here: the persistence layer depends on the domain, not the other way)."""

    id: int
    prefix: str
    provider: str
    customer: str | None = None  # system_id; None = every customer
    source_prefix: str | None = None  # None = any source address
    priority: int = 0
    failover: tuple[str, ...] = ()  # provider names, tried in this order

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MtRoute:
        return cls(
            id=row["id"],
            prefix=row["prefix"],
            provider=row["provider"],
            customer=row["customer"],
            source_prefix=row["source_prefix"],
            priority=row["priority"],
            failover=tuple(row["failover"] or ()),
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "customer": self.customer,
            "source_prefix": self.source_prefix,
            "priority": self.priority,
            "provider": self.provider,
            "failover": list(self.failover),
        }


@dataclass(frozen=True)
class MoRoute:
    """An MO route: which customer gets the messages sent to numbers under ``prefix``."""

    id: int
    prefix: str
    customer: str  # system_id

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "prefix": self.prefix, "customer": self.customer}


def normalize_number(addr: str) -> str:
    """The form addresses and prefixes are compared in (see module docstring)."""
    addr = addr.strip()
    return addr[1:] if addr.startswith("+") else addr


# Per route: the route and its casefolded source prefix ('' = any source).
_Entry = tuple["MtRoute", str]


class _Slot:
    """All routes of one destination prefix, already in precedence order."""

    __slots__ = ("generic", "specific")

    def __init__(self) -> None:
        self.generic: list[_Entry] = []
        self.specific: dict[str, list[_Entry]] = {}


def _order(entry: _Entry) -> tuple[int, int, int]:
    route, source = entry
    return (-len(source), -route.priority, route.id)


class RoutingTable:
    """MT routes indexed by destination prefix; one dict probe per prefix length."""

    def __init__(self, routes: Iterable[MtRoute]) -> None:
        slots: dict[str, _Slot] = {}
        for route in routes:
            prefix = normalize_number(route.prefix)
            slot = slots.get(prefix)
            if slot is None:
                slot = slots[prefix] = _Slot()
            entry = (route, normalize_number(route.source_prefix or "").casefold())
            if route.customer is None:
                slot.generic.append(entry)
            else:
                slot.specific.setdefault(route.customer, []).append(entry)
        for slot in slots.values():
            slot.generic.sort(key=_order)
            for entries in slot.specific.values():
                entries.sort(key=_order)
        self._slots = slots
        self._lengths = sorted({len(p) for p in slots}, reverse=True)
        self.size = sum(
            len(s.generic) + sum(len(e) for e in s.specific.values()) for s in slots.values()
        )

    def __len__(self) -> int:
        return self.size

    def route(self, customer: str, source_addr: str, dest_addr: str) -> MtRoute | None:
        """The best route, or None when nothing matches."""
        return next(self.candidates(customer, source_addr, dest_addr), None)

    def candidates(self, customer: str, source_addr: str, dest_addr: str) -> Iterator[MtRoute]:
        """Every matching route, best first: the caller skips disabled providers."""
        dest = normalize_number(dest_addr)
        source = normalize_number(source_addr).casefold()
        n = len(dest)
        slots = self._slots
        for length in self._lengths:
            if length > n:
                continue
            slot = slots.get(dest[:length])
            if slot is None:
                continue
            specific = slot.specific.get(customer)
            if specific is not None:
                for route, src in specific:
                    if source.startswith(src):
                        yield route
            for route, src in slot.generic:
                if source.startswith(src):
                    yield route


class MoRoutingTable:
    """MO routes: the longest prefix of the destination number wins."""

    def __init__(self, routes: Iterable[MoRoute]) -> None:
        self._by_prefix: dict[str, MoRoute] = {}
        for route in routes:
            self._by_prefix[normalize_number(route.prefix)] = route
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    def __len__(self) -> int:
        return len(self._by_prefix)

    def route(self, dest_addr: str) -> MoRoute | None:
        dest = normalize_number(dest_addr)
        n = len(dest)
        for length in self._lengths:
            if length <= n:
                found = self._by_prefix.get(dest[:length])
                if found is not None:
                    return found
        return None
