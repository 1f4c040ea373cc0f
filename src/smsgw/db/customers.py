"""Customers in PostgreSQL: the rows and the commands that change them."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from smsgw.auth import hash_password
from smsgw.tls import ca_pem, ca_subject, normalize_fingerprint

SYSTEM_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")


class ConfigError(ValueError):
    """Bad configuration input; the message says what to fix."""


@dataclass(frozen=True)
class Customer:
    id: int
    system_id: str
    password_hash: str
    enabled: bool
    max_binds: int
    tps: int
    allow_ips: tuple[str, ...]
    # TLS client certificate (issue 11): required at bind, and optionally pinned.
    require_client_cert: bool = False
    client_cert_sha256: str | None = None
    client_cert_cn: str | None = None
    client_ca_pem: str | None = field(default=None, repr=False)  # its own client CA

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Customer:
        return cls(
            id=row["id"],
            system_id=row["system_id"],
            password_hash=row["password_hash"],
            enabled=row["enabled"],
            max_binds=row["max_binds"],
            tps=row["tps"],
            allow_ips=tuple(str(n) for n in row["allow_ips"] or ()),
            require_client_cert=row["require_client_cert"],
            client_cert_sha256=row["client_cert_sha256"],
            client_cert_cn=row["client_cert_cn"],
            client_ca_pem=row["client_ca_pem"],
        )

    def public(self) -> dict[str, Any]:
        """What `customer show` prints: never the hash."""
        return {
            "id": self.id,
            "system_id": self.system_id,
            "enabled": self.enabled,
            "max_binds": self.max_binds,
            "tps": self.tps,
            "allow_ips": list(self.allow_ips),
            "require_client_cert": self.require_client_cert,
            "client_cert_sha256": self.client_cert_sha256,
            "client_cert_cn": self.client_cert_cn,
            "client_ca": ca_subject(self.client_ca_pem) if self.client_ca_pem else None,
        }


_COLUMNS = (
    "id, system_id, password_hash, enabled, max_binds, tps, allow_ips,"
    " require_client_cert, client_cert_sha256, client_cert_cn, client_ca_pem"
)
_SELECT = f"SELECT {_COLUMNS} FROM customers"


def _check_system_id(system_id: str) -> None:
    if not SYSTEM_ID.match(system_id):
        raise ConfigError(
            f"system_id {system_id!r}: use 1-15 letters, digits, '_', '.' or '-' "
            "(SMPP allows at most 15 characters)"
        )


def _check_cidrs(cidrs: Sequence[str]) -> list[str]:
    out = []
    for c in cidrs:
        try:
            out.append(str(ipaddress.ip_network(c, strict=False)))
        except ValueError as exc:
            raise ConfigError(f"--allow-ip {c!r} is not an IP network: {exc}") from exc
    return out


def check_client_ca(pem: str) -> str:
    """A customer's own client CA: one PEM certificate that can sign (a CA)."""
    try:
        return ca_pem(pem)
    except ValueError as exc:
        raise ConfigError(f"--tls-client-ca: {exc}") from exc


def check_client_cert(
    require: bool, sha256: str | None, cn: str | None, ca: str | None = None
) -> tuple[str | None, str | None]:
    """A pin makes sense only with the requirement; returns the normalised pins."""
    if (sha256 or cn or ca) and not require:
        raise ConfigError(
            "--client-cert-sha256/--client-cert-cn/--tls-client-ca pin a client certificate: "
            "add --require-client-cert"
        )
    fp = None
    if sha256:
        try:
            fp = normalize_fingerprint(sha256)
        except ValueError as exc:
            raise ConfigError(f"--client-cert-sha256: {exc}") from exc
    if cn is not None and not (0 < len(cn) <= 64):
        raise ConfigError("--client-cert-cn: give the certificate's common name (1-64 chars)")
    return fp, cn


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number, not {value}")


def add_customer(
    conn: psycopg.Connection[Any],
    system_id: str,
    password: str,
    *,
    tps: int = 100,
    max_binds: int = 4,
    allow_ips: Sequence[str] = (),
    enabled: bool = True,
    require_client_cert: bool = False,
    client_cert_sha256: str | None = None,
    client_cert_cn: str | None = None,
    client_ca_pem: str | None = None,
) -> Customer:
    _check_system_id(system_id)
    fp, cn = check_client_cert(
        require_client_cert, client_cert_sha256, client_cert_cn, client_ca_pem
    )
    ca = check_client_ca(client_ca_pem) if client_ca_pem else None
    _positive("--tps", tps)
    _positive("--max-binds", max_binds)
    nets = _check_cidrs(allow_ips)
    try:
        pw_hash = hash_password(password)
    except ValueError as exc:
        raise ConfigError(f"--password: {exc}") from exc
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "INSERT INTO customers (system_id, password_hash, enabled, max_binds, tps,"
                " allow_ips, require_client_cert, client_cert_sha256, client_cert_cn,"
                " client_ca_pem) VALUES (%s, %s, %s, %s, %s, %s::cidr[], %s, %s, %s, %s)"
                f" RETURNING {_COLUMNS}",
                (
                    system_id,
                    pw_hash,
                    enabled,
                    max_binds,
                    tps,
                    nets,
                    require_client_cert,
                    fp,
                    cn,
                    ca,
                ),
            )
            row = cur.fetchone()
        conn.commit()
    except psycopg.errors.UniqueViolation as exc:
        conn.rollback()
        raise ConfigError(f"customer {system_id!r} exists already; use `customer update`") from exc
    assert row is not None
    return Customer.from_row(row)


def update_customer(
    conn: psycopg.Connection[Any],
    system_id: str,
    *,
    password: str | None = None,
    tps: int | None = None,
    max_binds: int | None = None,
    allow_ips: Sequence[str] | None = None,
    enabled: bool | None = None,
    require_client_cert: bool | None = None,
    client_cert_sha256: str | None = None,
    client_cert_cn: str | None = None,
    client_ca_pem: str | None = None,
) -> Customer:
    """Change what is given (None: keep). ``require_client_cert=False`` drops the pins."""
    sets: list[str] = []
    args: list[Any] = []
    if require_client_cert is not None or client_cert_sha256 or client_cert_cn or client_ca_pem:
        require = require_client_cert is not False
        fp, cn = check_client_cert(require, client_cert_sha256, client_cert_cn, client_ca_pem)
        if not require or client_ca_pem:
            sets.append("client_ca_pem = %s")
            args.append(check_client_ca(client_ca_pem) if client_ca_pem else None)
        sets.append("require_client_cert = %s")
        args.append(require)
        if not require or fp:
            sets.append("client_cert_sha256 = %s")
            args.append(fp)
        if not require or cn:
            sets.append("client_cert_cn = %s")
            args.append(cn)
    if password is not None:
        try:
            sets.append("password_hash = %s")
            args.append(hash_password(password))
        except ValueError as exc:
            raise ConfigError(f"--password: {exc}") from exc
    if tps is not None:
        _positive("--tps", tps)
        sets.append("tps = %s")
        args.append(tps)
    if max_binds is not None:
        _positive("--max-binds", max_binds)
        sets.append("max_binds = %s")
        args.append(max_binds)
    if allow_ips is not None:
        sets.append("allow_ips = %s::cidr[]")
        args.append(_check_cidrs(allow_ips))
    if enabled is not None:
        sets.append("enabled = %s")
        args.append(enabled)
    if not sets:
        raise ConfigError("nothing to change: give at least one option")
    sets.append("updated_at = now()")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"UPDATE customers SET {', '.join(sets)} WHERE system_id = %s RETURNING {_COLUMNS}",
            (*args, system_id),
        )
        row = cur.fetchone()
    conn.commit()
    if row is None:
        raise ConfigError(f"no customer {system_id!r}; `smsgw customer list` shows them")
    return Customer.from_row(row)


def remove_customer(conn: psycopg.Connection[Any], system_id: str) -> None:
    """Delete a customer no route names; like `provider remove`, never its routes silently
    (the foreign keys would cascade and traffic would quietly take another route)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT id FROM customers WHERE system_id = %s FOR UPDATE", (system_id,)
        ).fetchone()
        if row is None:
            raise ConfigError(f"no customer {system_id!r}; `smsgw customer list` shows them")
        mt = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM mt_routes WHERE customer_id = %s ORDER BY id", (row[0],)
            )
        ]
        mo = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM mo_routes WHERE customer_id = %s ORDER BY id", (row[0],)
            )
        ]
        if mt or mo:
            used = []
            if mt:
                used.append(f"route(s) {', '.join(map(str, mt))} (`smsgw route remove ID`)")
            if mo:
                used.append(f"mo-route(s) {', '.join(map(str, mo))} (`smsgw mo-route remove ID`)")
            raise ConfigError(
                f"customer {system_id!r} is used by {' and '.join(used)}; "
                "remove or change those first, or `smsgw customer update "
                f"{system_id} --disable` to refuse its binds and keep its routes"
            )
        conn.execute("DELETE FROM customers WHERE id = %s", (row[0],))
    conn.commit()


def list_customers(conn: psycopg.Connection[Any]) -> list[Customer]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SELECT + " ORDER BY system_id")
        return [Customer.from_row(r) for r in cur.fetchall()]


def get_customer(conn: psycopg.Connection[Any], system_id: str) -> Customer:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SELECT + " WHERE system_id = %s", (system_id,))
        row = cur.fetchone()
    if row is None:
        raise ConfigError(f"no customer {system_id!r}; `smsgw customer list` shows them")
    return Customer.from_row(row)


async def load_customers(conn: psycopg.AsyncConnection[Any]) -> dict[str, Customer]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT)
        return {r["system_id"]: Customer.from_row(r) for r in await cur.fetchall()}


def lease_instance(conn: psycopg.Connection[Any], node: str, pid: int) -> int:
    """A gateway instance number for message ids (see smsgw.msgid)."""
    row = conn.execute("SELECT nextval('gateway_instance_seq')").fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO gateway_instances (instance, node, pid) VALUES (%s, %s, %s)",
        (row[0], node, pid),
    )
    conn.commit()
    return int(row[0])
