"""The Redis behind the Ray head's GCS (issue 14: the head's loss): what each part is told."""

from __future__ import annotations

import stat
from pathlib import Path

from smsgw.cluster.procs import free_port
from smsgw.cluster.ray_local import EmbeddedRay
from smsgw.cluster.redis_local import ensure_password, redis_conf
from smsgw.cluster.stack import Stack
from smsgw.settings import Settings


def test_the_embedded_redis_is_loopback_only_with_a_password_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    conf = redis_conf(tmp_path, 6381, "s3cret").splitlines()
    assert "bind 127.0.0.1" in conf and "protected-mode yes" in conf
    assert 'requirepass "s3cret"' in conf
    assert "appendonly yes" in conf, "a restarted Redis still has the GCS tables"
    assert f"dir {tmp_path}" in conf and "port 6381" in conf


def test_the_redis_password_is_made_once_and_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "home" / "ray_redis_password"
    first = ensure_password(path)
    assert len(first) == 64 and ensure_password(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_without_a_redis_the_head_has_no_gcs_store(tmp_path: Path) -> None:
    stack = Stack(Settings(home=tmp_path))
    assert stack._gcs_store(stack.settings) == (None, None)
    assert stack.redis is None


def test_an_external_redis_is_used_as_named(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, ray_redis_address="10.0.0.5:6379", ray_redis_password="pw")
    stack = Stack(s)
    assert stack._gcs_store(s) == ("10.0.0.5:6379", "pw")
    assert stack.redis is None, "nothing embedded started"


def test_a_head_with_a_redis_tells_ray_where_and_how(tmp_path: Path) -> None:
    """Ray docs, "GCS Fault Tolerance": RAY_REDIS_ADDRESS in the head's environment,
    the password as ``--redis-password``; a head without one gets neither."""
    head = EmbeddedRay(
        tmp_path,
        port=free_port(),
        token_path=tmp_path / "tok",
        redis_address="127.0.0.1:6381",
        redis_password="pw",
    )
    argv, env = head.head_command()
    assert env["RAY_REDIS_ADDRESS"] == "127.0.0.1:6381"
    assert "--redis-password=pw" in argv
    plain = EmbeddedRay(tmp_path, port=free_port(), token_path=tmp_path / "tok")
    argv, env = plain.head_command()
    assert "RAY_REDIS_ADDRESS" not in env or env["RAY_REDIS_ADDRESS"] == ""
    assert not any(a.startswith("--redis-password") for a in argv)
