"""The interop peers' installation: the README names the versions installed, failures are loud."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.interop import peers

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests" / "interop"


def _readme_versions() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### The interop tier", 1)[1]
    rows = re.findall(r"^\| [^|]*\(`([^`]+)`\) \| ([^ |]+) \|", section, re.MULTILINE)
    return dict(rows)


def test_readme_table_matches_the_pinned_peers() -> None:
    readme = _readme_versions()
    node = json.loads((INTEROP / "node" / "package.json").read_text())["dependencies"]["smpp"]
    lock = json.loads((INTEROP / "node" / "package-lock.json").read_text())
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(INTEROP / "java" / "pom.xml").getroot()
    jsmpp = pom.find("m:properties/m:jsmpp.version", ns)
    assert jsmpp is not None and jsmpp.text
    assert readme == {
        "smpp": node,
        "org.jsmpp:jsmpp": jsmpp.text,
        "smpplib": version("smpplib"),
        "smpp34": version("smpp34"),
    }
    assert lock["packages"]["node_modules/smpp"]["version"] == node


def test_a_peer_that_cannot_be_installed_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No npm, no Maven: installing the peers raises (the tier errors), it never skips."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("shutil.which", lambda tool: None)
    with pytest.raises(peers.PeerInstallError, match="npm is needed"):
        peers.ensure_node()
    with pytest.raises(peers.PeerInstallError, match="mvn is needed"):
        peers.ensure_java()
    assert not list(tmp_path.rglob(peers.COMPLETE_MARK))
