"""One settings object for the whole gateway.

Values come from CLI flags, then the environment (``SMSGW_*``, ``RAY_ADDRESS``),
then a ``.env`` file, then the embedded defaults. When an external service is
named (Kafka bootstrap, database URL, Ray address) the embedded one is not
started; when it is not, a running ``smsgw run`` is found through its runtime
file in ``SMSGW_HOME``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smsgw.credentials import KafkaCredentials

RUNTIME_FILE = "runtime.json"
RAY_AUTH_TOKEN_FILE = "ray_auth_token"
KAFKA_CREDENTIALS_FILE = "kafka_credentials.json"


def default_home() -> Path:
    """Where the embedded services keep their data.

    Root's home is usually mode 0700, which PostgreSQL (run as an unprivileged
    user) could not traverse, so root gets a system directory instead.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/smsgw")
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "smsgw"


def parse_hostport(value: str, default_port: int) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 in brackets) and say what is wrong if it is not."""
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535 (0: any free)")
    return host, int(port)


class Settings(BaseSettings):
    """Everything configurable, with the defaults of a single-node install."""

    model_config = SettingsConfigDict(
        env_prefix="SMSGW_", env_file=".env", extra="ignore", populate_by_name=True
    )

    home: Path = Field(default_factory=default_home)
    kafka_bootstrap: str | None = None
    # librdkafka security of every Kafka client (an external cluster's; the
    # embedded broker's SASL/SCRAM credentials are filled in from $SMSGW_HOME).
    kafka_security_protocol: str = "PLAINTEXT"  # SASL_PLAINTEXT, SASL_SSL, SSL
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_ca_location: str | None = None
    # Copies of every gateway topic and how many must hold a record before it is
    # acknowledged (None: min(3, brokers) and RF - 1, at least 1; see
    # smsgw.kafka.replication). At start, lower topics are reported; with
    # kafka_fix_replication their min.insync.replicas is raised.
    kafka_replication: int | None = Field(default=None, ge=1)
    kafka_min_isr: int | None = Field(default=None, ge=1)
    kafka_fix_replication: bool = False
    database_url: str | None = None
    ray_address: str | None = Field(
        default=None, validation_alias=AliasChoices("RAY_ADDRESS", "SMSGW_RAY_ADDRESS")
    )
    smpp_listen: str = "0.0.0.0:2775"
    # SMPP over TLS beside the plain listener (issue 11); unset: no TLS listener.
    # Without a certificate and key of its own, a self-signed pair is made in
    # $SMSGW_HOME/tls on first start.
    smpp_tls_listen: str | None = None
    smpp_tls_cert: Path | None = None
    smpp_tls_key: Path | None = None
    smpp_tls_client_ca: Path | None = None  # CAs whose client certificates are verified
    smpp_tls_handshake_timeout_s: float = Field(default=10.0, gt=0)
    node_name: str = Field(default_factory=socket.gethostname)

    # SMPP sessions with customers.
    smpp_max_pdu_size: int = 70_000  # a 64 KiB message_payload plus headers
    smpp_window: int = 10  # outstanding deliver_sm towards a customer
    smpp_enquire_link_s: float = 30.0
    smpp_inactivity_s: float = 120.0
    smpp_response_timeout_s: float = 10.0
    bind_failure_delay_s: float = 1.0  # brute-force damping on bad credentials
    max_backlog: int = 20_000  # records waiting for Kafka before ESME_RMSGQFUL

    # Listener limits: no single peer can starve the others (issue 11).
    smpp_bind_timeout_s: float = Field(default=10.0, gt=0)  # unbound connections closed after
    smpp_max_connections: int = Field(default=4000, gt=0)  # open connections on this node
    smpp_max_connections_per_ip: int = Field(default=64, gt=0)  # ... from one source address
    smpp_max_pdu_rate: float = Field(default=2000.0, ge=0)  # PDUs/s read per bound conn.; 0: off
    smpp_unbound_pdu_rate: float = Field(default=20.0, ge=0)  # ... per connection before its bind
    smpp_output_high_water: int = Field(default=256 * 1024, gt=0)  # unsent octets: stop reading
    # Load balancers whose connections start with a PROXY protocol header (v1 or
    # v2: HAProxy's send-proxy / send-proxy-v2) naming the customer's address;
    # comma-separated addresses or CIDRs, e.g. "10.0.0.5,10.0.1.0/28". Empty: none.
    # Only these are believed, and from them the header is required
    # (smsgw.server.proxy_header). The plain listener only: TLS ends at the gateway.
    smpp_proxy_protocol_from: str = ""
    bind_failures_before_lockout: int = Field(default=3, ge=0)  # per source IP / system_id
    bind_lockout_max_s: float = Field(default=300.0, gt=0)  # lockouts double from 1 s up to this
    bind_failure_window_s: float = Field(default=900.0, gt=0)  # failures older than this forgotten

    # Message path.
    provider_failover_after_s: float = 10.0  # unbound this long: use the failover route
    # An accepted message not with a provider this long after acceptance expires
    # (err:903); a provider's --message-ttl overrides it, a shorter validity wins.
    message_ttl_s: float = Field(default=86400.0, gt=0)
    delivery_ttl_s: float = 72 * 3600.0  # receipts/MO wait this long for a receiving bind
    receipt_park_s: float = 600.0  # a receipt waits this long for its submit's pairing
    # An incomplete multipart message fails (err:904 receipts) this long after
    # its first part arrived; operators use 5-30 minutes.
    multipart_expiry_s: float = Field(default=600.0, gt=0)
    # `smsgw message show|find` keeps each message's events this many days
    # (whole day partitions of message_event are dropped after it).
    history_retention_days: int = Field(default=7, ge=1)

    # Embedded services (used only when the external one is not named).
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    # Embedded brokers (combined controller+broker, KRaft). With N > 1, broker i
    # listens on kafka_port + 2i and its controller on kafka_controller_port + 2i.
    kafka_brokers: int = Field(default=1, ge=1, le=9)
    kafka_heap: str = "768m"
    kafka_version: str = "4.3.1"
    postgres_port: int = 5433
    ray_port: int = 6380
    # The embedded head's node IP: on 127.0.0.1 every Ray port is loopback-only;
    # a private address lets other nodes join (with the token; see SECURITY.md).
    ray_node_ip: str = "127.0.0.1"
    ray_dashboard_host: str = "127.0.0.1"
    ray_dashboard_port: int = 8265
    ray_object_store_mb: int = 256
    # Ray's --metrics-export-port of the embedded head: fixed, so Prometheus
    # (cluster/observe/prometheus.yml, `make observe`) finds it on every start.
    metrics_port: int = Field(default=9477, gt=0, lt=65536)
    # The operator console (HTTP, the Ray cluster's token to log in), served by the
    # supervisor. Loopback unless configured otherwise (DESIGN invariant 10).
    console_listen: str = "127.0.0.1:8280"

    # Kafka data plane.
    topic_prefix: str = "smsgw."
    topic_partitions: int = 6
    # A submit without Kafka's acknowledgement by then is answered ESME_RSYSERR (and
    # withdrawn); also librdkafka's message and request timeouts for the listener.
    produce_timeout_s: float = Field(default=5.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = False
    log_unmasked: bool = False  # show whole phone numbers in logs (default: last 3 digits)

    @field_validator("smpp_listen", "console_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_hostport(value, 2775)
        return value

    @field_validator("smpp_proxy_protocol_from")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for cidr in filter(None, (c.strip() for c in value.split(","))):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(
                    f"SMSGW_SMPP_PROXY_PROTOCOL_FROM: {cidr!r} is not an address or CIDR"
                    " (e.g. 10.0.0.5 or 10.0.1.0/28, comma-separated)"
                ) from None
        return value

    @property
    def smpp_proxy_networks(self) -> list[str]:
        """The proxies of ``smpp_proxy_protocol_from``, one address or CIDR each."""
        return [c.strip() for c in self.smpp_proxy_protocol_from.split(",") if c.strip()]

    @field_validator("smpp_tls_listen")
    @classmethod
    def _check_tls_listen(cls, value: str | None) -> str | None:
        if value:
            parse_hostport(value, 3550)
        return value or None

    @property
    def smpp_host_port(self) -> tuple[str, int]:
        return parse_hostport(self.smpp_listen, 2775)

    @property
    def smpp_tls_host_port(self) -> tuple[str, int] | None:
        """Where the TLS listener listens (3550 is a common SMPP-over-TLS port)."""
        return parse_hostport(self.smpp_tls_listen, 3550) if self.smpp_tls_listen else None

    @property
    def tls_cert_file(self) -> Path:
        return self.smpp_tls_cert or self.home / "tls" / "smpp.crt"

    @property
    def tls_key_file(self) -> Path:
        return self.smpp_tls_key or self.home / "tls" / "smpp.key"

    @property
    def tls_self_signed(self) -> bool:
        """No pair configured: one is generated (and kept) in $SMSGW_HOME."""
        return self.smpp_tls_cert is None and self.smpp_tls_key is None

    @property
    def runtime_file(self) -> Path:
        return self.home / RUNTIME_FILE

    @property
    def kafka_credentials_file(self) -> Path:
        """The embedded broker's SCRAM user, generated by ``smsgw run``."""
        return self.home / KAFKA_CREDENTIALS_FILE

    def with_kafka_credentials(self) -> Settings:
        """Use the embedded broker's credentials (when no others are named)."""
        if self.kafka_sasl_username is not None or not self.kafka_credentials_file.is_file():
            return self
        creds = KafkaCredentials.load(self.kafka_credentials_file)
        return self.model_copy(
            update={
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": creds.mechanism,
                "kafka_sasl_username": creds.username,
                "kafka_sasl_password": creds.password,
            }
        )

    @property
    def ray_auth_token_file(self) -> Path:
        """The Ray cluster's token (``RAY_AUTH_TOKEN_PATH``), generated by ``smsgw run``."""
        return self.home / RAY_AUTH_TOKEN_FILE

    def with_runtime(self) -> Settings:
        """Fill unnamed services from the runtime file of a running ``smsgw run``."""
        runtime = read_runtime(self.runtime_file)
        if not runtime:
            return self
        update: dict[str, Any] = {}
        for key in ("kafka_bootstrap", "database_url", "ray_address"):
            if getattr(self, key) is None and runtime.get(key):
                update[key] = runtime[key]
        filled = self.model_copy(update=update)
        if update.get("kafka_bootstrap") and runtime.get("embedded", {}).get("kafka"):
            return filled.with_kafka_credentials()
        return filled


def read_runtime(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_runtime(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, readable by the owner only: the database URL holds a password."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    tmp.replace(path)
