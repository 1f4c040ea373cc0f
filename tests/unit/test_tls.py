"""TLS settings and helpers: fingerprints, the self-signed pair, contexts, config checks."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
import trustme

from smsgw.db.customers import ConfigError, check_client_ca, check_client_cert
from smsgw.settings import Settings
from smsgw.tls import (
    client_context,
    ensure_self_signed,
    file_fingerprint,
    fingerprint,
    normalize_fingerprint,
    server_context,
)

FP = ":".join(["AB"] * 32)


@pytest.mark.parametrize(
    "given",
    [
        FP,
        FP.lower(),
        FP.replace(":", ""),
        "SHA256 Fingerprint=" + FP,  # as `openssl x509 -fingerprint -sha256` prints it
        "  " + FP + "\n",
    ],
)
def test_fingerprint_forms_are_normalised(given: str) -> None:
    assert normalize_fingerprint(given) == FP


@pytest.mark.parametrize("given", ["", "AB:CD", FP[:-1] + "G", FP + ":00", "sha1=" + "AB" * 20])
def test_bad_fingerprints_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="SHA-256 fingerprint"):
        normalize_fingerprint(given)


def test_fingerprint_is_sha256_of_der() -> None:
    assert fingerprint(b"") == normalize_fingerprint(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_self_signed_pair_made_once_key_private(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls" / "smpp.crt", tmp_path / "tls" / "smpp.key"
    fp, made = ensure_self_signed(cert, key, "gw.example")
    assert made
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert fp == file_fingerprint(cert)
    # Second start: kept, same fingerprint (customers pinned it).
    again, made_again = ensure_self_signed(cert, key, "gw.example")
    assert (again, made_again) == (fp, False)
    # The pair loads, and a client trusting the certificate verifies it.
    ctx = server_context(cert, key)
    assert ctx.verify_mode == ssl.CERT_NONE
    client = client_context(str(cert))
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname


def test_server_context_asks_for_client_certs_only_with_a_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("gw.example")
    cert, key, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    assert server_context(cert, key, ca_file).verify_mode == ssl.CERT_OPTIONAL
    assert server_context(cert, key).minimum_version >= ssl.TLSVersion.TLSv1_2


def test_provider_hostname_check_is_on_unless_opted_out() -> None:
    assert client_context().check_hostname
    off = client_context(verify_hostname=False)
    assert not off.check_hostname and off.verify_mode == ssl.CERT_REQUIRED


def test_tls_listen_settings(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, smpp_tls_listen="127.0.0.1:0")
    assert s.smpp_tls_host_port == ("127.0.0.1", 0)
    assert s.tls_self_signed
    assert s.tls_cert_file == tmp_path / "tls" / "smpp.crt"
    assert s.tls_key_file == tmp_path / "tls" / "smpp.key"
    assert Settings(home=tmp_path, smpp_tls_listen="").smpp_tls_host_port is None
    assert Settings(home=tmp_path).smpp_tls_host_port is None
    assert Settings(smpp_tls_listen=":3551").smpp_tls_host_port == ("0.0.0.0", 3551)
    own = Settings(
        smpp_tls_listen="[::1]:3550", smpp_tls_cert=Path("/c.pem"), smpp_tls_key=Path("/k.pem")
    )
    assert own.smpp_tls_host_port == ("::1", 3550)
    assert not own.tls_self_signed and own.tls_cert_file == Path("/c.pem")
    with pytest.raises(ValueError, match="port"):
        Settings(smpp_tls_listen="127.0.0.1:99999")


def test_tls_listen_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_SMPP_TLS_LISTEN", "0.0.0.0:3550")
    monkeypatch.setenv("SMSGW_SMPP_TLS_CLIENT_CA", "/etc/smsgw/clients.pem")
    s = Settings()
    assert s.smpp_tls_host_port == ("0.0.0.0", 3550)
    assert s.smpp_tls_client_ca == Path("/etc/smsgw/clients.pem")


def test_client_cert_pins_need_the_requirement() -> None:
    assert check_client_cert(False, None, None) == (None, None)
    assert check_client_cert(True, FP.lower(), "acme") == (FP, "acme")
    with pytest.raises(ConfigError, match="--require-client-cert"):
        check_client_cert(False, FP, None)
    with pytest.raises(ConfigError, match="--require-client-cert"):
        check_client_cert(False, None, "acme")
    with pytest.raises(ConfigError, match="--client-cert-sha256"):
        check_client_cert(True, "nope", None)
    with pytest.raises(ConfigError, match="--client-cert-cn"):
        check_client_cert(True, None, "")


def test_customer_ca_must_be_a_ca_certificate() -> None:
    ca = trustme.CA()
    assert check_client_ca(ca.cert_pem.bytes().decode()).startswith("-----BEGIN CERTIFICATE")
    leaf = ca.issue_cert("x.example").cert_chain_pems[0].bytes().decode()
    with pytest.raises(ConfigError, match="not a CA certificate"):
        check_client_ca(leaf)
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        check_client_ca("hello")
    with pytest.raises(ConfigError, match="--require-client-cert"):
        check_client_cert(False, None, None, ca.cert_pem.bytes().decode())


def _make_pair_in_child(home: str) -> tuple[str, bool]:
    return ensure_self_signed(Path(home) / "tls.crt", Path(home) / "tls.key", "gw.example")


def test_listeners_starting_together_make_one_pair(tmp_path: Path) -> None:
    """Several listener actors on one host start at once: one of them makes the pair, the
    others read it, and all print the same fingerprint."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_make_pair_in_child, [str(tmp_path)] * 8)
    assert sum(made for _, made in results) == 1
    assert {fp for fp, _ in results} == {file_fingerprint(tmp_path / "tls.crt")}
