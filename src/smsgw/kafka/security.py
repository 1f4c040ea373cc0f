"""Kafka client security: the one place every client config comes from.

Every producer, consumer and admin client of the gateway is configured by
``client_config``, so the security settings (``security.protocol``, SASL
mechanism and credentials, CA file) apply to all of them or to none. A process
sets them once (``use_security``, like ``use_static_membership``): the CLI from
its settings, each actor from the settings it was started with.

The embedded broker requires SASL/SCRAM; its one user's credentials are
generated into ``$SMSGW_HOME`` (``KafkaCredentials``, mode 0600).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsgw.settings import Settings

SCRAM_MECHANISM = "SCRAM-SHA-512"

_security: dict[str, str] = {}


@dataclass(frozen=True)
class KafkaCredentials:
    """The embedded broker's SCRAM user (the gateway is its only client)."""

    username: str
    password: str
    mechanism: str = SCRAM_MECHANISM

    @classmethod
    def load_or_create(cls, path: Path) -> KafkaCredentials:
        """Read ``path``, or write new random credentials there (0600, never overwritten)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls.load(path)
        creds = cls("smsgw", secrets.token_urlsafe(32))
        with os.fdopen(fd, "w") as fh:
            json.dump(creds.__dict__, fh)
        return creds

    @classmethod
    def load(cls, path: Path) -> KafkaCredentials:
        data = json.loads(path.read_text())
        return cls(str(data["username"]), str(data["password"]), str(data["mechanism"]))

    def client_security(self) -> dict[str, str]:
        """librdkafka settings for a client of the embedded broker (loopback, no TLS)."""
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": self.mechanism,
            "sasl.username": self.username,
            "sasl.password": self.password,
        }


def security_config(settings: Settings) -> dict[str, str]:
    """The librdkafka security settings named by the gateway's settings."""
    conf: dict[str, str] = {"security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.upper().startswith("SASL"):
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_username is not None:
            conf["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            conf["sasl.password"] = settings.kafka_sasl_password
    if settings.kafka_ssl_ca_location:
        conf["ssl.ca.location"] = settings.kafka_ssl_ca_location
    return conf


def use_security(conf: dict[str, str]) -> None:
    """Every client this process creates from now on uses ``conf``."""
    _security.clear()
    _security.update(conf)


def use_settings(settings: Settings) -> None:
    """Security and the replication policy of every client and topic of this process."""
    from smsgw.kafka.replication import use_replication

    use_security(security_config(settings))
    use_replication(settings.kafka_replication, settings.kafka_min_isr)


def client_config(
    bootstrap: str,
    extra: Mapping[str, Any] | None = None,
    *,
    security: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A librdkafka config: the bootstrap servers, the security settings, then ``extra``."""
    sec = _security if security is None else security
    return {"bootstrap.servers": bootstrap, **sec, **(extra or {})}
