"""Customer authentication: Argon2id hashes, constant-time checks, IP allowlists."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

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
