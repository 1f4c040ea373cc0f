"""MT and MO routes in PostgreSQL; lookups happen in ``smsgw.routing``.

Rows hold ids; the dataclasses hold names (provider name, customer
system_id), which is what the routing table and the operators speak.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from smsgw.db.customers import ConfigError
from smsgw.routing import MoRoute, MtRoute, normalize_number

MAX_PREFIX: Final = 20  # SMPP addresses are C-strings of at most 21 octets
_PREFIX = re.compile(rf"^[0-9]{{0,{MAX_PREFIX}}}$")
_SOURCE_PREFIX = re.compile(rf"^[0-9A-Za-z]{{1,{MAX_PREFIX}}}$")
_EMPTY = "''"


_MT_SELECT = (
    "SELECT r.id, r.prefix, r.source_prefix, r.priority, p.name AS provider,"
    " c.system_id AS customer,"
    " ARRAY(SELECT fp.name FROM unnest(r.failover_ids) WITH ORDINALITY AS f(pid, n)"
    "       JOIN providers fp ON fp.id = f.pid ORDER BY f.n) AS failover"
    " FROM mt_routes r JOIN providers p ON p.id = r.provider_id"
    " LEFT JOIN customers c ON c.id = r.customer_id"
)
_MT_ORDER = " ORDER BY r.prefix, c.system_id NULLS FIRST, r.source_prefix NULLS FIRST,"
_MT_ORDER += " r.priority DESC, r.id"
_MO_SELECT = (
    "SELECT r.id, r.prefix, c.system_id AS customer"
    " FROM mo_routes r JOIN customers c ON c.id = r.customer_id"
)


def check_prefix(prefix: str, flag: str = "--prefix") -> str:
    """The normalised prefix (leading '+' dropped), or a ConfigError saying why not."""
    value = normalize_number(prefix)
    if not _PREFIX.match(value):
        raise ConfigError(
            f"{flag} {prefix!r}: use up to {MAX_PREFIX} digits, international format "
            "without 00 (e.g. 4479 or +4479); '' matches every number"
        )
    return value


def check_source_prefix(prefix: str | None) -> str | None:
    if prefix is None or not prefix.strip():
        return None
    value = normalize_number(prefix)
    if not _SOURCE_PREFIX.match(value):
        raise ConfigError(
            f"--source-prefix {prefix!r}: use up to {MAX_PREFIX} digits, or letters and "
            "digits for an alphanumeric sender (compared case-insensitively)"
        )
    return value


def _customer_id(conn: psycopg.Connection[Any], system_id: str) -> int:
    row = conn.execute(
        "SELECT id FROM customers WHERE system_id = %s FOR KEY SHARE", (system_id,)
    ).fetchone()
    if row is None:
        raise ConfigError(f"no customer {system_id!r}; `smsgw customer list` shows them")
    return int(row[0])


def _provider_ids(conn: psycopg.Connection[Any], names: Sequence[str]) -> list[int]:
    """Ids in the order given; FOR KEY SHARE keeps `provider remove` from racing us."""
    rows = conn.execute(
        "SELECT name, id FROM providers WHERE name = ANY(%s) FOR KEY SHARE", (list(names),)
    ).fetchall()
    found = dict(rows)
    missing = [n for n in names if n not in found]
    if missing:
        raise ConfigError(
            f"unknown provider(s) {', '.join(map(repr, missing))}; "
            "`smsgw provider list` shows them, `smsgw provider add` creates one"
        )
    return [int(found[n]) for n in names]


def _check_failover(primary: str, failover: Sequence[str]) -> None:
    if primary in failover:
        raise ConfigError(
            f"--failover names the primary provider {primary!r}; list only the others"
        )
    if len(set(failover)) != len(failover):
        raise ConfigError(f"--failover {','.join(failover)}: each provider at most once")


def add_mt_route(
    conn: psycopg.Connection[Any],
    *,
    prefix: str,
    provider: str,
    customer: str | None = None,
    source_prefix: str | None = None,
    priority: int = 0,
    failover: Sequence[str] = (),
) -> MtRoute:
    prefix = check_prefix(prefix)
    source = check_source_prefix(source_prefix)
    _check_failover(provider, failover)
    with conn.transaction():
        primary_id, *failover_ids = _provider_ids(conn, [provider, *failover])
        customer_id = None if customer is None else _customer_id(conn, customer)
        clash = conn.execute(
            "SELECT id FROM mt_routes WHERE coalesce(customer_id, 0) = coalesce(%s, 0)"
            " AND prefix = %s AND coalesce(source_prefix, '') = coalesce(%s, '')"
            " AND priority = %s",
            (customer_id, prefix, source, priority),
        ).fetchone()
        if clash is not None:
            raise ConfigError(
                f"route {clash[0]} already covers customer {customer or '(all)'}, "
                f"prefix {prefix or _EMPTY}, source {source or '(any)'}, priority {priority}; "
                f"change it (`smsgw route update {clash[0]}`) or give another --priority"
            )
        try:
            row = conn.execute(
                "INSERT INTO mt_routes"
                " (customer_id, prefix, source_prefix, priority, provider_id, failover_ids)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (customer_id, prefix, source, priority, primary_id, failover_ids),
            ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise ConfigError("an identical route was added at the same moment") from exc
    conn.commit()
    assert row is not None
    return get_mt_route(conn, int(row[0]))


def update_mt_route(
    conn: psycopg.Connection[Any],
    route_id: int,
    *,
    provider: str | None = None,
    priority: int | None = None,
    failover: Sequence[str] | None = None,
) -> MtRoute:
    """Change where a route goes; to change what it matches, remove and add."""
    if provider is None and priority is None and failover is None:
        raise ConfigError("nothing to change: give --provider, --priority or --failover")
    try:
        with conn.transaction():
            current = get_mt_route(conn, route_id)
            primary = current.provider if provider is None else provider
            backups = list(current.failover if failover is None else failover)
            _check_failover(primary, backups)
            primary_id, *failover_ids = _provider_ids(conn, [primary, *backups])
            conn.execute(
                "UPDATE mt_routes SET provider_id = %s, failover_ids = %s,"
                " priority = coalesce(%s, priority), updated_at = now() WHERE id = %s",
                (primary_id, failover_ids, priority, route_id),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise ConfigError(
            f"another route already has priority {priority} for the same customer, "
            "prefix and source; pick another --priority"
        ) from exc
    conn.commit()
    return get_mt_route(conn, route_id)


def remove_mt_route(conn: psycopg.Connection[Any], route_id: int) -> None:
    cur = conn.execute("DELETE FROM mt_routes WHERE id = %s", (route_id,))
    conn.commit()
    if cur.rowcount == 0:
        raise _no_mt(route_id)


def list_mt_routes(conn: psycopg.Connection[Any]) -> list[MtRoute]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_MT_SELECT + _MT_ORDER)
        return [MtRoute.from_row(r) for r in cur.fetchall()]


def get_mt_route(conn: psycopg.Connection[Any], route_id: int) -> MtRoute:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_MT_SELECT + " WHERE r.id = %s", (route_id,))
        row = cur.fetchone()
    if row is None:
        raise _no_mt(route_id)
    return MtRoute.from_row(row)


def add_mo_route(conn: psycopg.Connection[Any], prefix: str, customer: str) -> MoRoute:
    prefix = check_prefix(prefix)
    with conn.transaction():
        customer_id = _customer_id(conn, customer)
        clash = conn.execute(
            "SELECT r.id, c.system_id FROM mo_routes r JOIN customers c ON c.id = r.customer_id"
            " WHERE r.prefix = %s",
            (prefix,),
        ).fetchone()
        if clash is not None:
            raise ConfigError(
                f"MO prefix {prefix or _EMPTY} already goes to customer {clash[1]!r} "
                f"(mo-route {clash[0]}); use `smsgw mo-route update {clash[0]}`"
            )
        try:
            row = conn.execute(
                "INSERT INTO mo_routes (prefix, customer_id) VALUES (%s, %s) RETURNING id",
                (prefix, customer_id),
            ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise ConfigError(f"MO prefix {prefix!r} was added at the same moment") from exc
    conn.commit()
    assert row is not None
    return MoRoute(int(row[0]), prefix, customer)


def update_mo_route(conn: psycopg.Connection[Any], route_id: int, customer: str) -> MoRoute:
    with conn.transaction():
        customer_id = _customer_id(conn, customer)
        row = conn.execute(
            "UPDATE mo_routes SET customer_id = %s, updated_at = now() WHERE id = %s"
            " RETURNING prefix",
            (customer_id, route_id),
        ).fetchone()
        if row is None:
            raise _no_mo(route_id)
    conn.commit()
    return MoRoute(route_id, row[0], customer)


def remove_mo_route(conn: psycopg.Connection[Any], route_id: int) -> None:
    cur = conn.execute("DELETE FROM mo_routes WHERE id = %s", (route_id,))
    conn.commit()
    if cur.rowcount == 0:
        raise _no_mo(route_id)


def list_mo_routes(conn: psycopg.Connection[Any]) -> list[MoRoute]:
    rows = conn.execute(_MO_SELECT + " ORDER BY r.prefix").fetchall()
    return [MoRoute(*r) for r in rows]


def get_mo_route(conn: psycopg.Connection[Any], route_id: int) -> MoRoute:
    row = conn.execute(_MO_SELECT + " WHERE r.id = %s", (route_id,)).fetchone()
    if row is None:
        raise _no_mo(route_id)
    return MoRoute(*row)


async def load_mt_routes(conn: psycopg.AsyncConnection[Any]) -> list[MtRoute]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_MT_SELECT)
        return [MtRoute.from_row(r) for r in await cur.fetchall()]


async def load_mo_routes(conn: psycopg.AsyncConnection[Any]) -> list[MoRoute]:
    async with conn.cursor() as cur:
        await cur.execute(_MO_SELECT)
        return [MoRoute(*r) for r in await cur.fetchall()]


def _no_mt(route_id: int) -> ConfigError:
    return ConfigError(f"no route {route_id}; `smsgw route list` shows them")


def _no_mo(route_id: int) -> ConfigError:
    return ConfigError(f"no mo-route {route_id}; `smsgw mo-route list` shows them")
