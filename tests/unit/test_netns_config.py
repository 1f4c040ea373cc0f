"""Hosts on addresses other than loopback (issue 14): what each service is told, and Ray's token."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from smsgw.cluster.netns import BridgeKafka, HAProxy, Lab
from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.procs import ServiceError, free_port
from smsgw.cluster.ray_local import EmbeddedRay, ensure_auth_token, require_token
from smsgw.kafka.security import KafkaCredentials


def test_ray_on_loopback_needs_nothing() -> None:
    require_token("127.0.0.1", {})
    require_token("localhost", {"RAY_AUTH_MODE": "disabled"})


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "abc"},
        {"RAY_AUTH_MODE": "token"},
        {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/nonexistent/token"},
    ],
)
def test_ray_on_another_address_refuses_to_start_without_the_token(env: dict[str, str]) -> None:
    with pytest.raises(ServiceError, match=r"10\.77\.0\.11"):
        require_token("10.77.0.11", env)


def test_ray_on_another_address_starts_with_the_token(tmp_path: Path) -> None:
    token = ensure_auth_token(tmp_path / "ray_auth_token")
    require_token("10.77.0.11", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    require_token("10.77.0.11", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "x" * 64})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ServiceError, match="token"):
        require_token(
            "10.77.0.11",
            {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "empty")},
        )


def test_a_head_on_a_private_address_with_auth_turned_off_is_not_started(tmp_path: Path) -> None:
    """An operator's RAY_AUTH_MODE=disabled must not open a reachable Ray (SECURITY.md)."""
    head = EmbeddedRay(
        tmp_path,
        port=free_port(),
        token_path=tmp_path / "ray_auth_token",
        node_ip="10.77.0.11",
        dashboard_port=free_port(),
        env={"RAY_AUTH_MODE": "disabled"},
    )
    with pytest.raises(ServiceError, match="RAY_AUTH_MODE=token"):
        head.start(timeout=5)
    assert head.process is None, "nothing was started"
    worker = EmbeddedRay(
        tmp_path,
        port=0,
        token_path=tmp_path / "ray_auth_token",
        address="10.77.0.11:6380",
        env={"RAY_AUTH_MODE": "disabled"},
    )
    with pytest.raises(ServiceError, match="RAY_AUTH_MODE=token"):
        worker.start(timeout=5)
    assert worker.process is None


def test_postgres_on_a_private_address_lets_that_network_in_once(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path, port=5999, host="10.77.0.1", allow="10.77.0.0/24")
    pg.pgdata.mkdir(parents=True)
    (pg.pgdata / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    pg.password_file.write_text("pw\n")
    pg._allow_network()
    pg._allow_network()
    lines = (pg.pgdata / "pg_hba.conf").read_text().splitlines()
    assert lines.count("host all all 10.77.0.0/24 scram-sha-256") == 1
    assert pg.url() == "postgresql://smsgw:pw@10.77.0.1:5999/smsgw"
    assert EmbeddedPostgres(tmp_path, port=5999).url().endswith("@127.0.0.1:5999/smsgw")


def test_the_infra_broker_listens_and_advertises_on_its_address(tmp_path: Path) -> None:
    creds = KafkaCredentials.load_or_create(tmp_path / "creds.json")
    kafka = BridgeKafka("10.77.0.1", tmp_path, port=19092, controller_port=19093, credentials=creds)
    props = kafka.server_properties()
    assert props["listeners"] == (
        "SASL_PLAINTEXT://10.77.0.1:19092,CONTROLLER://127.0.0.1:19093"
    ), "clients on the bridge, the controller (the broker alone dials it) on loopback"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://10.77.0.1:19092"
    assert kafka.bootstrap == "10.77.0.1:19092"


def test_interface_names_fit_the_kernel_limit() -> None:
    """IFNAMSIZ is 16 with the NUL: a longer veth name makes `ip link add` fail."""
    for prefix in ("smsgw", "smsgwt"):
        lab = Lab(9, prefix=prefix)
        for h in lab.hosts:
            assert len(h.veth) <= 15 and len(f"{h.veth[:-1]}c") <= 15
        assert len(lab.bridge) <= 15
        assert [h.address for h in lab.hosts][:3] == ["10.77.0.11", "10.77.0.12", "10.77.0.13"]
        assert lab.vip == "10.77.0.100" and lab.infra == "10.77.0.1"


def test_the_vip_is_round_robin_tcp_with_health_checks(tmp_path: Path) -> None:
    lab = Lab(3)
    proxy = HAProxy(tmp_path, lab.vip, lab.hosts, lab.infra)
    cfg = proxy.config()
    assert "mode tcp" in cfg and "balance roundrobin" in cfg
    assert "bind 10.77.0.100:2775" in cfg
    for h in lab.hosts:
        assert f"server h{h.index} {h.address}:2775 send-proxy-v2 source 10.77.0.1" in cfg
    assert "check inter 500 fall 2 rise 2 on-marked-down shutdown-sessions" in cfg
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"  # cluster/install-system-deps.sh
    (tmp_path / "haproxy.cfg").write_text(cfg)
    done = subprocess.run(
        [haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_slow_node_start_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ray start` gives its node 30 s; with the setting, each poll waits up to its timeout."""
    from ray._private import services

    from smsgw.actors.loopback import patient_node_start

    calls: list[float] = []

    def slow_registry(gcs: str, node_id: str) -> dict[str, str]:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError("node not registered yet")
        return {"node_id": node_id}

    monkeypatch.setattr(services, "get_node", slow_registry)
    patient_node_start(5.0)
    patient_node_start(5.0)  # idempotent: one wrapper
    get_node: Any = services.get_node
    assert get_node("gcs:1", "n1") == {"node_id": "n1"}
    assert len(calls) == 3

    calls.clear()
    monkeypatch.setattr(services, "get_node", slow_registry)
    patient_node_start(0.0)
    with pytest.raises(RuntimeError):
        get_node = services.get_node
        get_node("gcs:1", "n2")  # past its timeout: Ray's own loop decides
