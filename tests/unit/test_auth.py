from __future__ import annotations

import pytest

from smsgw.auth import BindGuard, hash_password, ip_allowed, parse_networks, verify_password
from smsgw.log import clip


def test_password_hash_is_not_plaintext_and_verifies() -> None:
    h = hash_password("s3cret")
    assert "s3cret" not in h and h.startswith("$argon2id$")
    assert verify_password(h, "s3cret")
    assert not verify_password(h, "s3cret!")
    assert not verify_password(None, "anything"), "unknown user never verifies"
    assert not verify_password("garbage", "x")


def test_password_rules_follow_smpp() -> None:
    with pytest.raises(ValueError):
        hash_password("")
    with pytest.raises(ValueError):
        hash_password("123456789")  # SMPP passwords are at most 8 characters


def test_allowlist() -> None:
    nets = parse_networks(["10.0.0.0/8", "2001:db8::/32"])
    assert ip_allowed("10.1.2.3", nets)
    assert ip_allowed("::ffff:10.1.2.3", nets), "IPv4-mapped IPv6 peers are matched as IPv4"
    assert ip_allowed("2001:db8::1", nets)
    assert not ip_allowed("192.168.1.1", nets)
    assert not ip_allowed("not-an-ip", nets)
    assert ip_allowed("192.168.1.1", ()), "an empty allowlist allows all"


def test_bind_guard_locks_a_source_ip_after_free_failures_with_doubling_lockouts() -> None:
    g = BindGuard(free=3, max_lock_s=8.0, window_s=900.0)
    now = 1000.0
    for _ in range(3):
        assert g.admit("10.0.0.1", "acme", now) is None
        assert g.failed("10.0.0.1", "acme", now) == 0.0
    assert g.failed("10.0.0.1", "acme", now) == 1.0
    assert g.admit("10.0.0.1", "acme", now + 0.5) == "ip"
    assert g.admit("10.0.0.1", "other", now + 0.5) == "ip", "any system_id from that IP"
    assert g.admit("10.0.0.1", "acme", now + 1.01) is None, "the lockout ends"
    locks = [g.failed("10.0.0.1", "acme", now + 2 + i) for i in range(6)]
    assert locks == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0], "doubling, capped"
    assert g.admit("10.0.0.1", "acme", now + 2000) is None
    assert g.failed("10.0.0.1", "acme", now + 2000) == 0.0, "old failures are forgotten"


def test_bind_guard_never_locks_a_customer_out_of_the_ips_it_binds_from() -> None:
    g = BindGuard(free=2, max_lock_s=60.0)
    now = 0.0
    g.succeeded("192.0.2.7", "acme")  # the real customer
    for i in range(10):  # guesses spread over many addresses
        g.failed(f"198.51.100.{i}", "acme", now)
    assert g.admit("198.51.100.200", "acme", now) == "system_id", "a new address is slowed"
    assert g.admit("198.51.100.200", "bob", now) is None, "other customers are not"
    assert g.admit("192.0.2.7", "acme", now) is None, "the customer's own address is not"


def test_bind_guard_bounds_checks_in_progress_per_ip_and_its_memory() -> None:
    g = BindGuard(max_in_progress=2, max_entries=100)
    g.started("10.0.0.1")
    g.started("10.0.0.1")
    assert g.admit("10.0.0.1", None, 0.0) == "ip", "parallel connections gain nothing"
    g.finished("10.0.0.1")
    assert g.admit("10.0.0.1", None, 0.0) is None
    for i in range(1000):
        g.failed(f"10.1.{i // 256}.{i % 256}", f"user{i}", 0.0)
    assert len(g._ip) <= 100 and len(g._system) <= 100


def test_clip_bounds_peer_strings_in_logs() -> None:
    assert clip("acme") == "acme"
    long = clip("x" * 20_000)
    assert len(long) < 100 and long.startswith("x" * 64) and long.endswith("(+19936)")
    assert clip("a\nb\x00") == "a\\nb\\x00", "no forged log lines"
