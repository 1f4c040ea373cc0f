"""A provider row (smsgw.db.providers.Provider) for unit tests, without PostgreSQL."""

from __future__ import annotations

from typing import Any

from smsgw.db.providers import Provider


def provider_row(name: str = "p", **overrides: Any) -> Provider:
    """A trx provider on 127.0.0.1:2775, one bind, 10 TPS, window 10; ``overrides`` win."""
    fields: dict[str, Any] = {
        "id": 1,
        "name": name,
        "host": "127.0.0.1",
        "port": 2775,
        "system_id": name,
        "password": "x",
        "system_type": "",
        "bind_mode": "trx",
        "binds": 1,
        "tps": 10,
        "window": 10,
        "enquire_link_s": 30,
        "submit_id_format": "dec",
        "receipt_id_format": "dec",
        "enabled": True,
    }
    fields.update(overrides)
    return Provider(**fields)
