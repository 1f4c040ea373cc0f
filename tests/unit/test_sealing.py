"""Provider passwords at rest and phone numbers in logs (issue 11)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from smsgw import log
from smsgw.sealing import FERNET, Sealer, SecretError, is_stored_safely

PASSWORD = "Sx9#kq2P"


def test_sealed_password_round_trip_key_private(tmp_path: Path) -> None:
    sealer = Sealer.for_home(tmp_path)
    stored = sealer.seal(PASSWORD)
    assert stored.startswith(FERNET) and PASSWORD not in stored
    assert is_stored_safely(stored)
    assert stat.S_IMODE((tmp_path / "secrets.key").stat().st_mode) == 0o600
    # Another process with the same home (a restart, another actor) opens it.
    assert Sealer.for_home(tmp_path).open(stored) == PASSWORD
    # Sealing twice gives different tokens: equal passwords do not show as equal rows.
    assert sealer.seal(PASSWORD) != stored


def test_other_key_or_no_key_says_what_to_do(tmp_path: Path) -> None:
    stored = Sealer.for_home(tmp_path / "a").seal(PASSWORD)
    Sealer.for_home(tmp_path / "b").seal("x")  # makes b's own key
    with pytest.raises(SecretError, match="another key"):
        Sealer.for_home(tmp_path / "b").open(stored)
    with pytest.raises(SecretError, match="copy it from"):
        Sealer.for_home(tmp_path / "c").open(stored)
    assert not (tmp_path / "c" / "secrets.key").exists(), "opening never makes a key"


def test_file_reference_and_legacy_plaintext(tmp_path: Path) -> None:
    secret = tmp_path / "acme.pw"
    secret.write_text(PASSWORD + "\n")
    sealer = Sealer.for_home(tmp_path)
    assert sealer.open(f"file:{secret}") == PASSWORD
    assert is_stored_safely(f"file:{secret}")
    with pytest.raises(SecretError, match="cannot read"):
        sealer.open(f"file:{tmp_path / 'missing'}")
    assert sealer.open("plain") == "plain"  # a row from before sealing, until sealed
    assert not is_stored_safely("plain")


def test_numbers_masked_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(log._masking, "unmasked", False)
    assert log.mask_number("4917612345678") == "***678"
    assert log.mask_number("123") == "123"
    event = {"event": "x", "dest": "4917612345678", "source_addr": "4915100000001", "id": "7"}
    assert log._mask_numbers(None, "info", event) == {
        "event": "x",
        "dest": "***678",
        "source_addr": "***001",
        "id": "7",
    }
    monkeypatch.setitem(log._masking, "unmasked", True)
    assert log.mask_number("4917612345678") == "4917612345678"


def _seal_in_child(home: str) -> str:
    return Sealer.for_home(Path(home)).seal(PASSWORD)


def test_processes_starting_together_make_one_key(tmp_path: Path) -> None:
    """Several actors on one host seal at once: the key file is made once, under the lock,
    so every token opens with the key left on disk."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(6) as pool:
        tokens = pool.map(_seal_in_child, [str(tmp_path)] * 12)
    opener = Sealer.for_home(tmp_path)
    assert [opener.open(t) for t in tokens] == [PASSWORD] * 12
    assert stat.S_IMODE((tmp_path / "secrets.key.lock").stat().st_mode) == 0o600
