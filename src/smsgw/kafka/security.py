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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# Re-exported: cluster/ and the tests take the credentials from here, with the clients' config.
from smsgw.credentials import KafkaCredentials as KafkaCredentials  # noqa: PLC0414

if TYPE_CHECKING:
    from smsgw.settings import Settings


_security: dict[str, str] = {}


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
