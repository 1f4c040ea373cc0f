"""Provider passwords at rest: sealed with a key kept beside the gateway, not in PostgreSQL.

A database dump or a read-only SQL user must not hand out the credentials the
gateway binds to SMSCs with (issue 11). The stored value is one of:
- ``fernet:<token>``: encrypted with the Fernet key in ``$SMSGW_HOME/secrets.key``
  (mode 0600; every node that binds to providers needs a copy);
- ``file:<path>``: a reference to a secret file on the gateway's nodes
  (e.g. mounted by a secret manager), read at bind time;
- anything else: a plaintext row written before sealing existed; sealed by
  ``seal_plaintext`` at start and still usable until then.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet, InvalidToken
from filelock import FileLock

FERNET = "fernet:"
FILE = "file:"
KEY_FILE = "secrets.key"


class SecretError(RuntimeError):
    """A stored secret cannot be read here; the message says what to do."""


def _locked(path: Path) -> FileLock:
    """One process at a time makes the file (several actors may start on one host)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return FileLock(path, mode=0o600)


class Sealer:
    """Seals and opens stored secrets with the key in ``key_file`` (made on first seal)."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._fernet: Fernet | None = None

    @classmethod
    def for_home(cls, home: Path) -> Sealer:
        return cls(home / KEY_FILE)

    def _key(self, create: bool) -> Fernet:
        if self._fernet is None:
            if not self.key_file.exists():
                if not create:
                    raise SecretError(
                        f"no key {self.key_file} to decrypt provider passwords: copy it from"
                        " the node where `smsgw provider add` ran (same $SMSGW_HOME/secrets.key)"
                    )
                with _locked(self.key_file.with_name(KEY_FILE + ".lock")):
                    if not self.key_file.exists():
                        tmp = self.key_file.with_name(KEY_FILE + ".tmp")
                        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                        with os.fdopen(fd, "wb") as fh:
                            fh.write(Fernet.generate_key())
                        tmp.replace(self.key_file)
            self._fernet = Fernet(self.key_file.read_bytes().strip())
        return self._fernet

    def seal(self, plaintext: str) -> str:
        return FERNET + self._key(create=True).encrypt(plaintext.encode()).decode()

    def open(self, stored: str) -> str:
        """The password to send in bind_* (SMPP 3.4 §4.1.1)."""
        if stored.startswith(FERNET):
            try:
                return self._key(create=False).decrypt(stored[len(FERNET) :]).decode()
            except InvalidToken as exc:
                raise SecretError(
                    f"a provider password was sealed with another key than {self.key_file}"
                ) from exc
        if stored.startswith(FILE):
            path = Path(stored[len(FILE) :])
            try:
                return path.read_text().rstrip("\r\n")
            except OSError as exc:
                raise SecretError(f"cannot read the password file {path}: {exc}") from exc
        return stored


def is_stored_safely(stored: str) -> bool:
    return stored.startswith((FERNET, FILE))


def seal_plaintext(conn: psycopg.Connection[Any], sealer: Sealer) -> int:
    """Seal provider passwords still stored in plaintext; returns how many."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT id, password FROM providers"
            " WHERE password NOT LIKE 'fernet:%%' AND password NOT LIKE 'file:%%' FOR UPDATE"
        ).fetchall()
        for pid, password in rows:
            conn.execute(
                "UPDATE providers SET password = %s WHERE id = %s", (sealer.seal(password), pid)
            )
    return len(rows)
