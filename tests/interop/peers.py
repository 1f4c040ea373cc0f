"""Third-party SMPP peers for the interop tier: installed from the registries, driven by JSON lines.

node-smpp comes from npm (``tests/interop/node/package.json`` and its lock file,
``npm ci`` into ``~/.cache/smsgw/interop/node``); jsmpp from Maven Central
(``tests/interop/java/pom.xml``, copied with its runtime closure into
``~/.cache/smsgw/interop/java`` the way ``cluster/kafka/pom.xml`` fetches Kafka).
``make interop-peers`` (a part of ``make test``, not of ``make run``) runs :func:`ensure_all`; the
tier's fixtures run it again, so a missing peer is installed or the tier fails.

Each language runs all its peers in one process (``node/peer.js``,
``java/.../Peer.java``): commands go to its stdin as JSON lines naming a peer,
and everything the peers see comes back on stdout as JSON lines
(``{"peer": ..., "ev": ..., ...}``) that the tests wait for and assert on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smsgw.cluster.kafka_dist import cache_root

HERE = Path(__file__).resolve().parent
NODE_SRC = HERE / "node"
JAVA_SRC = HERE / "java"
COMPLETE_MARK = ".complete"

Event = dict[str, Any]


class PeerInstallError(RuntimeError):
    """A third-party peer could not be installed or started: the tier fails, never skips."""


def _digest(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    tool = cmd[0]
    if shutil.which(tool) is None:
        raise PeerInstallError(f"{tool} is needed for the interop peers (make system-deps)")
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PeerInstallError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def interop_dir() -> Path:
    return cache_root() / "interop"


def ensure_node() -> Path:
    """node-smpp from npm, pinned by the lock file; returns its node_modules folder."""
    files = [NODE_SRC / "package.json", NODE_SRC / "package-lock.json"]
    stamp = _digest(*files)
    home = interop_dir() / "node"
    modules = home / "node_modules"
    if (home / COMPLETE_MARK).exists() and (home / COMPLETE_MARK).read_text() == stamp:
        return modules
    home.mkdir(parents=True, exist_ok=True)
    (home / COMPLETE_MARK).unlink(missing_ok=True)
    for f in files:
        shutil.copyfile(f, home / f.name)
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=home)
    if not (modules / "smpp" / "package.json").exists():
        raise PeerInstallError(f"npm ci ran but {modules}/smpp is missing")
    (home / COMPLETE_MARK).write_text(stamp)
    return modules


def ensure_java() -> Path:
    """jsmpp and its runtime closure from Maven Central; returns the folder of jars."""
    pom = JAVA_SRC / "pom.xml"
    stamp = _digest(pom)
    lib = interop_dir() / "java"
    if (lib / COMPLETE_MARK).exists() and (lib / COMPLETE_MARK).read_text() == stamp:
        return lib
    shutil.rmtree(lib, ignore_errors=True)  # never mix jars of two fetches
    work = interop_dir() / "java-build"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pom, work / "pom.xml")
    _run(["mvn", "-q", "-B", "-f", str(work / "pom.xml"), "package", f"-Dpeers.lib.dir={lib}"])
    if not list(lib.glob("jsmpp-*.jar")):
        raise PeerInstallError(f"Maven ran but {lib} holds no jsmpp jar")
    (lib / COMPLETE_MARK).write_text(stamp)
    return lib


def ensure_all() -> dict[str, Path]:
    return {"node": ensure_node(), "java": ensure_java()}


def compile_java(lib: Path, out: Path) -> Path:
    """Compile Peer.java once per run against the fetched jars; returns the class folder."""
    sources = [str(p) for p in (JAVA_SRC / "src").rglob("*.java")]
    _run(["javac", "-nowarn", "-d", str(out), "-cp", f"{lib}/*", *sources])
    return out


class PeerProcess:
    """One peer process: JSON-line commands in, JSON-line events out (kept, and waited for)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.events: list[Event] = []
        self.cond = threading.Condition()
        self.stderr: list[str] = []
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
                env={**os.environ, **(env or {})},
            )
        except OSError as exc:
            raise PeerInstallError(f"cannot start the {name} peers: {exc}") from exc
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True, name=f"{name}-out"),
            threading.Thread(target=self._read_stderr, daemon=True, name=f"{name}-err"),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"peer": self.name, "ev": "stdout", "line": line.rstrip()}
            with self.cond:
                self.events.append(event)
                self.cond.notify_all()
        with self.cond:
            self.events.append({"peer": self.name, "ev": "exited"})
            self.cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def send(self, peer: str, op: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the {self.name} peers exited: {self.diagnostics()}")
        self.proc.stdin.write(json.dumps({"peer": peer, "op": op, **fields}) + "\n")
        self.proc.stdin.flush()

    def of(self, peer: str, ev: str | None = None) -> list[Event]:
        with self.cond:
            return [e for e in self.events if e["peer"] == peer and (ev is None or e["ev"] == ev)]

    def wait_for(
        self,
        peer: str,
        ev: str,
        match: Callable[[Event], bool] = lambda e: True,
        *,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[Event]:
        """The first ``count`` events ``ev`` of ``peer`` that ``match``; fails on a peer error."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                errors = [
                    e
                    for e in self.events
                    if e["ev"] in ("error", "exited") and e["peer"] in (peer, self.name)
                ]
                if errors:
                    raise AssertionError(f"{self.name} peer error: {errors}\n{self.diagnostics()}")
                found = [e for e in self.events if e["peer"] == peer and e["ev"] == ev and match(e)]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.name}/{peer}: {len(found)}/{count} {ev!r} within {timeout} s; "
                        f"its events: {[e for e in self.events if e['peer'] == peer][-20:]}"
                    )
                self.cond.wait(left)

    def diagnostics(self) -> str:
        return f"stderr of {self.name}: " + "\n".join(self.stderr[-30:])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_node(modules: Path) -> PeerProcess:
    peers = PeerProcess(
        "node", ["node", str(NODE_SRC / "peer.js")], env={"NODE_PATH": str(modules)}
    )
    peers.wait_for("node", "ready", timeout=60)
    return peers


def start_java(lib: Path, classes: Path) -> PeerProcess:
    cp = os.pathsep.join([str(classes), f"{lib}/*"])
    peers = PeerProcess("java", ["java", "-Xss512k", "-Xmx128m", "-cp", cp, "smsgw.interop.Peer"])
    peers.wait_for("jvm", "ready", timeout=60)
    return peers


def start_python() -> PeerProcess:
    repo = HERE.parent.parent
    peers = PeerProcess(
        "python",
        [sys.executable, "-m", "tests.interop.python_peer"],
        env={"PYTHONPATH": str(repo)},
    )
    peers.wait_for("python", "ready", timeout=60)
    return peers


if __name__ == "__main__":
    for kind, path in ensure_all().items():
        print(f"interop peers ({kind}): {path}")
    sys.exit(0)
