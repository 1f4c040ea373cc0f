"""The embedded broker's SCRAM user, as a file in ``$SMSGW_HOME`` (mode 0600).

Below both ``smsgw.settings`` (which reads it to fill in the Kafka credentials)
and ``smsgw.kafka.security`` (which re-exports it for the clients' config), so
neither imports the other at run time (docs/ARCHITECTURE.md, "Layers").
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

SCRAM_MECHANISM = "SCRAM-SHA-512"


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


def ray_token(default_path: Path | None = None) -> str | None:
    """The Ray cluster's token: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, else ours.

    The one secret of the control plane (``smsgw run`` generates it into
    ``$SMSGW_HOME/ray_auth_token``; an external cluster names its own in the
    environment, which every actor inherits). The operator console takes it too.
    """
    if token := os.environ.get("RAY_AUTH_TOKEN"):
        return token.strip() or None
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    for candidate in (Path(named) if named else None, default_path):
        if candidate is not None and candidate.is_file():
            return candidate.read_text().strip() or None
    return None
