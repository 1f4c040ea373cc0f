from __future__ import annotations

import pytest

from smsgw.auth import hash_password, ip_allowed, parse_networks, verify_password


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
