"""Customer authentication: Argon2id hashes, constant-time checks, IP allowlists,
and the brute-force guard (``BindGuard``)."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# SMPP passwords are at most 8 octets; Argon2id with moderate cost keeps a bind
# check around 20-40 ms on one core while making offline guessing expensive.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Checked against when the system_id is unknown, so that unknown ids and wrong
# passwords take the same time and cannot be told apart by a stopwatch.
_DUMMY_HASH = _hasher.hash("not-a-password")

MAX_PASSWORD_LEN = 8  # SMPP 3.4 password is a C-Octet String of at most 9 octets


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("the password must not be empty")
    if len(password.encode("latin-1", "replace")) > MAX_PASSWORD_LEN:
        raise ValueError(f"SMPP passwords are at most {MAX_PASSWORD_LEN} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-time in the sense that matters: same work whether or not the user exists."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def ip_allowed(ip: str, networks: tuple[Network, ...]) -> bool:
    """An empty allowlist allows everyone."""
    if not networks:
        return True
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class BindGuard:
    """Limits password guessing per source IP and per system_id (issue 11).

    Pure (the clock is passed in). After ``free`` verified failures within
    ``window_s``, a source is locked out for 1 s, doubling with every further
    failure up to ``max_lock_s``; while locked, its binds are refused without
    checking the password at all, so parallel connections gain nothing.
    Two sources are tracked:
    - the source IP, whatever system_id it tries;
    - a known system_id, but only for IPs it has never bound from: an attacker
      spreading guesses over many addresses is slowed down, while the real
      customer's own addresses (one successful bind) are never locked out by
      someone else's failures.
    Attacker-chosen keys are bounded (LRU of ``max_entries``).
    """

    def __init__(
        self,
        *,
        free: int = 3,
        max_lock_s: float = 300.0,
        window_s: float = 900.0,
        max_entries: int = 100_000,
        max_in_progress: int = 8,
    ) -> None:
        self.free = free
        self.max_lock_s = max_lock_s
        self.window_s = window_s
        self.max_entries = max_entries
        self.max_in_progress = max_in_progress
        self._ip: OrderedDict[str, _Failures] = OrderedDict()
        self._system: OrderedDict[str, _Failures] = OrderedDict()
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._in_progress: dict[str, int] = {}

    def admit(self, ip: str, system_id: str | None, now: float) -> str | None:
        """None if the password may be checked now; else why not ("ip"/"system_id")."""
        if self._in_progress.get(ip, 0) >= self.max_in_progress:
            return "ip"
        if self._locked(self._ip.get(ip), now):
            return "ip"
        if (
            system_id is not None
            and (system_id, ip) not in self._known
            and self._locked(self._system.get(system_id), now)
        ):
            return "system_id"
        return None

    def started(self, ip: str) -> None:
        self._in_progress[ip] = self._in_progress.get(ip, 0) + 1

    def finished(self, ip: str) -> None:
        n = self._in_progress.get(ip, 0) - 1
        if n > 0:
            self._in_progress[ip] = n
        else:
            self._in_progress.pop(ip, None)

    def failed(self, ip: str, system_id: str | None, now: float) -> float:
        """Record a verified failure; returns the lockout it starts (0: none)."""
        lock = self._fail(self._ip, ip, now)
        if system_id is not None and (system_id, ip) not in self._known:
            lock = max(lock, self._fail(self._system, system_id, now))
        return lock

    def succeeded(self, ip: str, system_id: str) -> None:
        """This customer binds from this IP: others' failures never lock it out here."""
        self._known[(system_id, ip)] = None
        self._known.move_to_end((system_id, ip))
        self._trim(self._known)

    def _locked(self, f: _Failures | None, now: float) -> bool:
        return f is not None and now < f.locked_until

    def _fail(self, table: OrderedDict[str, _Failures], key: str, now: float) -> float:
        f = table.get(key)
        if f is None or now - f.last > self.window_s:
            f = _Failures()
        f.count += 1
        f.last = now
        table[key] = f
        table.move_to_end(key)
        self._trim(table)
        if f.count <= self.free:
            return 0.0
        lock = min(self.max_lock_s, 2.0 ** (f.count - self.free - 1))
        f.locked_until = now + lock
        return lock

    def _trim(self, table: OrderedDict[Any, Any]) -> None:
        while len(table) > self.max_entries:
            table.popitem(last=False)
