"""TLS for SMPP on both sides: the listener's contexts, the self-signed pair, pins.

SMPP 3.4 itself has no security layer (§2.1: it runs over TCP/IP or X.25);
SMPP over TLS is the same PDU stream inside a TLS session, on its own port.
Contexts come from the standard library's ``ssl`` (TLS 1.2 at least); the
self-signed pair for a first start is made with ``cryptography``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import ssl
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from filelock import FileLock

_HEX = re.compile(r"^[0-9a-f]{64}$")


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER form, as ``AB:CD:...`` (how openssl prints it)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(value: str) -> str:
    """Accept a SHA-256 fingerprint as printed by openssl, with or without colons.

    Raises ValueError with what is wrong: operators paste these from
    ``openssl x509 -fingerprint -sha256`` (``SHA256 Fingerprint=AB:CD:..``).
    """
    text = value.strip()
    if "=" in text:
        text = text.split("=", 1)[1]
    hexed = text.replace(":", "").replace(" ", "").lower()
    if not _HEX.match(hexed):
        raise ValueError(
            f"{value!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed; "
            "`openssl x509 -noout -fingerprint -sha256 -in CERT` prints one)"
        )
    return fingerprint_from_hex(hexed)


def fingerprint_from_hex(hexed: str) -> str:
    up = hexed.upper()
    return ":".join(up[i : i + 2] for i in range(0, len(up), 2))


def file_fingerprint(cert_file: Path) -> str:
    """Fingerprint of the first certificate in a PEM file."""
    der = ssl.PEM_cert_to_DER_cert(cert_file.read_text())
    return fingerprint(der)


def _locked(path: Path) -> FileLock:
    """One process at a time makes the file (several actors may start on one host)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return FileLock(path, mode=0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def ensure_self_signed(cert_file: Path, key_file: Path, hostname: str) -> tuple[str, bool]:
    """Make a self-signed certificate and key unless both exist; (fingerprint, made now).

    The key is written mode 0600. Customers pin the printed fingerprint (or
    the certificate) until the operator installs one from a CA.
    """
    with _locked(key_file.with_name(key_file.name + ".lock")):
        if cert_file.exists() and key_file.exists():
            return file_fingerprint(cert_file), False
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
        with contextlib.suppress(ValueError):
            import ipaddress

            sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write(key_file, key_pem, 0o600)
        _write(cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return fingerprint(cert.public_bytes(serialization.Encoding.DER)), True


def server_context(
    cert_file: Path, key_file: Path, client_ca: Path | None = None
) -> ssl.SSLContext:
    """The listener's context: TLS >= 1.2; client certificates asked for when a CA is set.

    A client certificate is optional at the handshake (CERT_OPTIONAL): the
    customer, and so whether it must present one, is known only at its bind.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(ca_file: str | None = None, *, verify_hostname: bool = True) -> ssl.SSLContext:
    """Towards a provider: the chain always verified (system CAs or ``ca_file``).

    ``verify_hostname=False`` is the explicit opt-out for SMSCs whose
    certificate does not name the address we connect to; the chain is still
    checked, so a certificate pinned through ``ca_file`` keeps it meaningful.
    """
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = verify_hostname
    return ctx


def peer_fingerprint(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """Fingerprint of the verified client certificate, None without one."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return fingerprint(der) if der else None


def peer_subject_cn(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The verified client certificate's subject common name, None without one."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def ca_pem(pem: str) -> str:
    """Check that `pem` holds one CA certificate; return it as PEM (ValueError: why not)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise ValueError("not a PEM certificate") from exc
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        raise ValueError(f"{cert.subject.rfc4514_string()} is not a CA certificate")
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ca_subject(pem: str) -> str:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()


def issued_by(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, pem: str) -> bool:
    """Whether the peer's certificate was signed directly by the CA in `pem`.

    The handshake verified the chain against every trusted CA; this says it
    was this customer's own CA, not another customer's.
    """
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return False
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(pem.encode()))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def trust_client_cas(ctx: ssl.SSLContext, pems: list[str], loaded: set[str]) -> int:
    """Add client CAs not yet trusted by `ctx` (new connections see them); returns how many.

    Asking for client certificates (CERT_OPTIONAL) starts with the first CA.
    A CA removed from a customer stays trusted at the handshake until restart,
    but no longer admits that customer's binds (checked at the bind).
    """
    added = 0
    for pem in pems:
        if pem not in loaded:
            ctx.load_verify_locations(cadata=pem)
            loaded.add(pem)
            added += 1
    if loaded and ctx.verify_mode == ssl.CERT_NONE:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return added
