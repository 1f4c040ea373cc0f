"""Generated secrets stay private and stable; Kafka security settings reach every client config."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from smsgw.actors.loopback import is_loopback
from smsgw.cluster.ray_local import auth_env, ensure_auth_token
from smsgw.kafka.security import (
    KafkaCredentials,
    client_config,
    security_config,
    use_security,
    use_settings,
)
from smsgw.settings import Settings


@pytest.fixture(autouse=True)
def _no_process_security(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The integration harness exports the session broker's credentials as
    # SMSGW_KAFKA_* (one pytest process runs both tiers): Settings must not see them.
    for name in list(os.environ):
        if name.startswith("SMSGW_KAFKA_"):
            monkeypatch.delenv(name)
    use_security({})
    yield
    use_security({})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ray_token_is_created_once_owner_only(tmp_path: Path) -> None:
    path = ensure_auth_token(tmp_path / "home" / "ray_auth_token")
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0
    assert _mode(path) == 0o600
    path.chmod(0o644)
    assert ensure_auth_token(path).read_text() == token, "a second start keeps the token"
    assert _mode(path) == 0o600, "and takes group/other access away again"
    assert auth_env(path) == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}


def test_kafka_credentials_are_created_once_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "kafka_credentials.json"
    first = KafkaCredentials.load_or_create(path)
    assert _mode(path) == 0o600
    assert KafkaCredentials.load_or_create(path) == first
    assert len(first.password) >= 40 and first.mechanism == "SCRAM-SHA-512"


def test_plaintext_by_default_and_sasl_ssl_when_configured() -> None:
    assert security_config(Settings(home=Path("/nonexistent"))) == {
        "security.protocol": "PLAINTEXT"
    }
    external = Settings(
        home=Path("/nonexistent"),
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="gw",
        kafka_sasl_password="pw",
        kafka_ssl_ca_location="/etc/ssl/kafka-ca.pem",
    )
    assert security_config(external) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "gw",
        "sasl.password": "pw",
        "ssl.ca.location": "/etc/ssl/kafka-ca.pem",
    }


def test_every_client_config_carries_the_process_security() -> None:
    from smsgw.kafka.consumer import consumer_config
    from smsgw.kafka.producer import producer_config

    use_settings(
        Settings(
            home=Path("/nonexistent"),
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="gw",
            kafka_sasl_password="pw",
        )
    )
    for conf in (
        client_config("b:9092"),
        consumer_config("b:9092", "g"),
        producer_config("b:9092", timeout_s=5),
    ):
        assert conf["bootstrap.servers"] == "b:9092"
        assert conf["security.protocol"] == "SASL_PLAINTEXT"
        assert (conf["sasl.username"], conf["sasl.password"]) == ("gw", "pw")
    # An explicit security (a broker's own readiness probe, a test's intruder) wins.
    assert "sasl.username" not in client_config("b:9092", security={})


def test_the_embedded_brokers_credentials_are_found_in_the_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.with_kafka_credentials() == s, "no credentials file: nothing changes"
    creds = KafkaCredentials.load_or_create(s.kafka_credentials_file)
    filled = s.with_kafka_credentials()
    assert filled.kafka_security_protocol == "SASL_PLAINTEXT"
    assert (filled.kafka_sasl_username, filled.kafka_sasl_password) == (
        creds.username,
        creds.password,
    )
    named = Settings(home=tmp_path, kafka_sasl_username="other", kafka_sasl_password="x")
    assert named.with_kafka_credentials() == named, "named credentials win"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        ("192.0.2.2", False),
        ("0.0.0.0", False),
        ("ray-head", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_ray_logs_rotate_at_our_size_unless_the_operator_says_otherwise() -> None:
    from smsgw.cluster.ray_local import log_rotation_env

    ours = log_rotation_env({})
    assert ours == {"RAY_ROTATION_MAX_BYTES": str(64 << 20), "RAY_ROTATION_BACKUP_COUNT": "3"}
    theirs = log_rotation_env({"RAY_ROTATION_MAX_BYTES": "1000"})
    assert theirs["RAY_ROTATION_MAX_BYTES"] == "1000" and theirs["RAY_ROTATION_BACKUP_COUNT"] == "3"
