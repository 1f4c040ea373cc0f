"""Providers (SMSCs) in PostgreSQL: where we bind, with what, and how fast."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from smsgw import log
from smsgw.db.customers import ConfigError
from smsgw.provider_ids import FORMATS
from smsgw.reframe import SEGMENTATION_MODES
from smsgw.sealing import FILE, Sealer, SecretError, is_stored_safely

NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
BIND_MODES: Final = ("trx", "tx+rx")
REQUEST_RECEIPTS: Final = ("always", "as-customer")  # registered_delivery towards the provider
EMPTY: Final = "''"  # how an empty (catch-all) prefix is shown
_HOST = re.compile(r"^[A-Za-z0-9.:_\-\[\]]{1,253}$")
# C-Octet String sizes of bind_* in SMPP 3.4, without the terminating NUL.
_SMPP_MAX = {"system_id": 15, "password": 8, "system_type": 12}


@dataclass(frozen=True)
class Provider:
    id: int
    name: str
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)  # sent in bind_*; kept out of logs and reprs
    system_type: str
    bind_mode: str
    binds: int
    tps: int
    window: int
    enquire_link_s: int
    submit_id_format: str
    receipt_id_format: str
    enabled: bool
    segmentation: str = "keep"
    request_receipts: str = "always"
    # SMPP over TLS (issue 11): chain checked against the system CAs or tls_ca_file,
    # the host name against the certificate unless tls_verify_hostname is off.
    tls: bool = False
    tls_ca_file: str | None = None
    tls_verify_hostname: bool = True
    message_ttl_s: int = 0  # 0: the gateway's SMSGW_MESSAGE_TTL_S
    max_pdu_octets: int = 65536
    max_unknown_attempts: int = 3

    def max_age_s(self, default_s: float) -> float:
        """How long a message may wait for this provider (its own TTL, else the gateway's)."""
        return float(self.message_ttl_s) if self.message_ttl_s > 0 else default_s

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Provider:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def public(self) -> dict[str, Any]:
        """What `provider list/show` prints: never the password."""
        return {
            "id": self.id,
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "system_id": self.system_id,
            "system_type": self.system_type,
            "bind_mode": self.bind_mode,
            "binds": self.binds,
            "tps": self.tps,
            "window": self.window,
            "enquire_link_s": self.enquire_link_s,
            "submit_id_format": self.submit_id_format,
            "receipt_id_format": self.receipt_id_format,
            "segmentation": self.segmentation,
            "request_receipts": self.request_receipts,
            "tls": self.tls,
            "tls_ca_file": self.tls_ca_file,
            "tls_verify_hostname": self.tls_verify_hostname,
            "message_ttl_s": self.message_ttl_s,
            "max_pdu_octets": self.max_pdu_octets,
            "max_unknown_attempts": self.max_unknown_attempts,
            "enabled": self.enabled,
        }


_COLUMNS = (
    "id, name, host, port, system_id, password, system_type, bind_mode, binds, tps,"
    " window_size AS window, enquire_link_s, submit_id_format, receipt_id_format, enabled,"
    " segmentation, request_receipts, tls, tls_ca_file, tls_verify_hostname,"
    " message_ttl_s, max_pdu_octets, max_unknown_attempts"
)
_SELECT = f"SELECT {_COLUMNS} FROM providers"
# Option name (as the CLI spells it) -> column, for add and update alike.
_OPTION_COLUMNS: Final = {
    "host": "host",
    "port": "port",
    "system_id": "system_id",
    "password": "password",
    "system_type": "system_type",
    "bind_mode": "bind_mode",
    "binds": "binds",
    "tps": "tps",
    "window": "window_size",
    "enquire_link_s": "enquire_link_s",
    "submit_id_format": "submit_id_format",
    "receipt_id_format": "receipt_id_format",
    "segmentation": "segmentation",
    "request_receipts": "request_receipts",
    "tls": "tls",
    "tls_ca_file": "tls_ca_file",
    "tls_verify_hostname": "tls_verify_hostname",
    "message_ttl_s": "message_ttl_s",
    "max_pdu_octets": "max_pdu_octets",
    "max_unknown_attempts": "max_unknown_attempts",
    "enabled": "enabled",
}


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise ConfigError(
            f"provider name {name!r}: use 1-32 lowercase letters, digits, '_' or '-' "
            "(it becomes part of a Kafka topic name)"
        )


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _check(option: str, value: Any) -> None:
    """Validate one setting; the message names the CLI flag to fix."""
    flag = _flag(option)
    if option == "host" and not _HOST.match(value):
        raise ConfigError(f"{flag} {value!r}: give a host name or IP address")
    if option == "port" and not 1 <= value <= 65535:
        raise ConfigError(f"{flag} {value}: use a TCP port from 1 to 65535")
    if option == "password" and value.startswith(FILE):
        path = Path(value[len(FILE) :])
        if not path.is_absolute() or not path.is_file():
            raise ConfigError(f"--password-file {path}: give the absolute path of a file")
        return
    if option in _SMPP_MAX:
        limit = _SMPP_MAX[option]
        if not value.isascii() or len(value) > limit:
            raise ConfigError(f"{flag}: SMPP allows at most {limit} ASCII characters")
        if option == "system_id" and not value:
            raise ConfigError(f"{flag} must not be empty")
    if option == "bind_mode" and value not in BIND_MODES:
        raise ConfigError(f"{flag} {value!r}: use one of {', '.join(BIND_MODES)}")
    if option in ("binds", "tps", "window", "enquire_link_s") and value <= 0:
        raise ConfigError(f"{flag} must be a positive number, not {value}")
    if option == "message_ttl_s" and value < 0:
        raise ConfigError(f"{flag} must be 0 (the gateway's default) or a number of seconds")
    if option == "max_pdu_octets" and not 64 <= value <= 1 << 24:
        raise ConfigError(f"{flag} {value}: use a size in octets from 64 up")
    if option == "max_unknown_attempts" and value < 1:
        raise ConfigError(f"{flag} must be at least 1, not {value}")
    if option == "segmentation" and value not in SEGMENTATION_MODES:
        raise ConfigError(f"{flag} {value!r}: use one of {', '.join(SEGMENTATION_MODES)}")
    if option == "request_receipts" and value not in REQUEST_RECEIPTS:
        raise ConfigError(f"{flag} {value!r}: use one of {', '.join(REQUEST_RECEIPTS)}")
    if option == "tls_ca_file" and value and not Path(value).is_file():
        raise ConfigError(f"{flag} {value!r}: no such file (give a PEM file of CA certificates)")
    if option.endswith("_id_format") and value not in FORMATS:
        raise ConfigError(f"{flag} {value!r}: use one of {', '.join(FORMATS)}")


def add_provider(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    host: str,
    port: int,
    system_id: str,
    password: str,
    system_type: str = "",
    bind_mode: str = "trx",
    binds: int = 1,
    tps: int = 10,
    window: int = 10,
    enquire_link_s: int = 30,
    submit_id_format: str = "str",
    receipt_id_format: str = "str",
    segmentation: str = "keep",
    request_receipts: str = "always",
    tls: bool = False,
    tls_ca_file: str | None = None,
    tls_verify_hostname: bool = True,
    message_ttl_s: int = 0,
    max_pdu_octets: int = 65536,
    max_unknown_attempts: int = 3,
    enabled: bool = True,
    sealer: Sealer | None = None,
) -> Provider:
    """Add a provider; with `sealer` its password is stored encrypted (or as a file: ref)."""
    check_name(name)
    values = {
        "host": host,
        "port": port,
        "system_id": system_id,
        "password": password,
        "system_type": system_type,
        "bind_mode": bind_mode,
        "binds": binds,
        "tps": tps,
        "window": window,
        "enquire_link_s": enquire_link_s,
        "submit_id_format": submit_id_format,
        "receipt_id_format": receipt_id_format,
        "segmentation": segmentation,
        "request_receipts": request_receipts,
        "tls": tls,
        "tls_ca_file": tls_ca_file,
        "tls_verify_hostname": tls_verify_hostname,
        "message_ttl_s": message_ttl_s,
        "max_pdu_octets": max_pdu_octets,
        "max_unknown_attempts": max_unknown_attempts,
        "enabled": enabled,
    }
    for option, value in values.items():
        _check(option, value)
    if sealer is not None and not is_stored_safely(password):
        values["password"] = sealer.seal(password)
    cols = ", ".join(_OPTION_COLUMNS[o] for o in values)
    marks = ", ".join(["%s"] * (len(values) + 1))
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"INSERT INTO providers (name, {cols}) VALUES ({marks}) RETURNING {_COLUMNS}",
                (name, *values.values()),
            )
            row = cur.fetchone()
        conn.commit()
    except psycopg.errors.UniqueViolation as exc:
        conn.rollback()
        raise ConfigError(f"provider {name!r} exists already; use `provider update`") from exc
    assert row is not None
    return Provider.from_row(row)


def update_provider(
    conn: psycopg.Connection[Any], name: str, *, sealer: Sealer | None = None, **changes: Any
) -> Provider:
    """Change the given settings (keyword names as in `add_provider`); None = keep."""
    given = {k: v for k, v in changes.items() if v is not None}
    unknown = set(given) - set(_OPTION_COLUMNS)
    if unknown:
        raise ConfigError(f"unknown provider setting(s): {', '.join(sorted(unknown))}")
    if not given:
        raise ConfigError("nothing to change: give at least one option")
    for option, value in given.items():
        _check(option, value)
    pw = given.get("password")
    if sealer is not None and pw is not None and not is_stored_safely(pw):
        given["password"] = sealer.seal(pw)
    sets = [f"{_OPTION_COLUMNS[o]} = %s" for o in given] + ["updated_at = now()"]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"UPDATE providers SET {', '.join(sets)} WHERE name = %s RETURNING {_COLUMNS}",
            (*given.values(), name),
        )
        row = cur.fetchone()
    conn.commit()
    if row is None:
        raise _unknown(name)
    return Provider.from_row(row)


def remove_provider(conn: psycopg.Connection[Any], name: str) -> None:
    """Delete a provider no route uses (as primary or failover)."""
    with conn.transaction():
        # The row lock orders us against `route add` (it takes FOR KEY SHARE).
        row_id = _check_unused(conn, name, lock=True)
        conn.execute("DELETE FROM providers WHERE id = %s", (row_id,))
    conn.commit()


def check_removable(conn: psycopg.Connection[Any], name: str) -> None:
    """Raise ConfigError if `name` does not exist or a route uses it."""
    with conn.transaction():
        _check_unused(conn, name, lock=False)
    conn.commit()


def _check_unused(conn: psycopg.Connection[Any], name: str, *, lock: bool) -> int:
    """The provider's row id, if no route uses it (as primary or failover)."""
    query = (
        "SELECT id FROM providers WHERE name = %s FOR UPDATE"
        if lock
        else "SELECT id FROM providers WHERE name = %s"
    )
    row = conn.execute(query, (name,)).fetchone()
    if row is None:
        raise _unknown(name)
    users = conn.execute(
        "SELECT id, prefix, provider_id = %s FROM mt_routes"
        " WHERE provider_id = %s OR %s = ANY(failover_ids) ORDER BY id",
        (row[0], row[0], row[0]),
    ).fetchall()
    if users:
        listed = ", ".join(
            f"{rid} (prefix {prefix or EMPTY}, {'primary' if primary else 'failover'})"
            for rid, prefix, primary in users
        )
        raise ConfigError(
            f"provider {name!r} is used by route(s) {listed}; "
            "remove or change those routes first (`smsgw route list`)"
        )
    return int(row[0])


def list_providers(conn: psycopg.Connection[Any]) -> list[Provider]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SELECT + " ORDER BY name")
        return [Provider.from_row(r) for r in cur.fetchall()]


def get_provider(conn: psycopg.Connection[Any], name: str) -> Provider:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SELECT + " WHERE name = %s", (name,))
        row = cur.fetchone()
    if row is None:
        raise _unknown(name)
    return Provider.from_row(row)


async def load_providers(
    conn: psycopg.AsyncConnection[Any], sealer: Sealer | None = None
) -> dict[str, Provider]:
    """Every provider by name, disabled ones too (the caller decides).

    With `sealer`, passwords are opened (decrypted, or read from their file);
    one that cannot be is logged and left empty (its binds are refused), so a
    missing key stops that provider, not the configuration of every other.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT)
        rows = await cur.fetchall()
    out = {}
    for r in rows:
        if sealer is not None:
            try:
                r["password"] = sealer.open(r["password"])
            except SecretError as exc:
                log.get("smsgw.config").error(
                    "provider password unreadable", provider=r["name"], error=str(exc)
                )
                r["password"] = ""
        out[r["name"]] = Provider.from_row(r)
    return out


def _unknown(name: str) -> ConfigError:
    return ConfigError(f"no provider {name!r}; `smsgw provider list` shows them")
