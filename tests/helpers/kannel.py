"""Kannel (bearerbox + smsbox) as an independent SMPP customer of the gateway.

`KannelClient` writes a kannel.conf for one ``smsc = smpp`` connection to the
gateway, starts bearerbox and smsbox as children that die with us (their own
process groups, ``PR_SET_PDEATHSIG``), waits until the bind is up, and submits
messages through smsbox's HTTP ``/cgi-bin/sendsms``. Delivery reports and MO
messages that Kannel hands to smsbox are collected by a small local HTTP
server (``dlr-url`` / ``get-url``) and readable with `dlr_reports()` /
`mo_messages()`.

Kannel is a Debian package (``apt-get install kannel``; see
``cluster/install-system-deps.sh``, which keeps Debian from starting its own
bearerbox on 13000/13013). The harness only looks for the binaries and fails
loudly when they are missing: an interop test is never skipped.

Kannel configuration traps (SMPP-NOTES.md): a blank line ends a group, so
every group below is written without inner blank lines and separated by
exactly one; ``system-type`` must be present (``""`` is fine);
``port`` and ``receive-port`` do not share one group, so a TX + RX customer
is two smsc groups with the same ``smsc-id``; the sendsms user needs
``concatenation = true`` and ``max-messages > 1`` or smsbox truncates to
one SMS; ``msg-id-type`` is left unset so ids are kept as the exact strings.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from smsgw.cluster.procs import ManagedProcess, ServiceError, free_port, port_open, wait_for

SMSC_ID = "smsgw"
SENDSMS_USER = "tester"
SENDSMS_PASSWORD = "tester-pw"
ADMIN_PASSWORD = "admin-pw"
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


class KannelError(RuntimeError):
    """Kannel could not be started or refused a request; the text shows its logs."""


def find_kannel_binary(name: str) -> str:
    """Absolute path of ``bearerbox`` / ``smsbox``, or a loud KannelError."""
    found = shutil.which(name)
    if found:
        return found
    for folder in _SBIN:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise KannelError(
        f"Kannel's {name} not found (looked in PATH and {', '.join(_SBIN)}). "
        "Install the Debian package: cluster/install-system-deps.sh, or as root: "
        "apt-get update -qq && apt-get install -y --no-install-recommends kannel "
        "(with a policy-rc.d exiting 101 so Debian does not start its own bearerbox)."
    )


def _quote(value: str) -> str:
    if any(c in value for c in '"\\\n\r'):
        raise ValueError(f"value not representable in kannel.conf: {value!r}")
    return f'"{value}"'


def _group(name: str, items: dict[str, str | int | bool]) -> str:
    """One config group: no blank line inside (a blank line would end it)."""
    lines = [f"group = {name}"]
    for key, value in items.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = _quote(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


class _Collector(ThreadingHTTPServer):
    """Records the query strings of Kannel's dlr-url / get-url callbacks."""

    daemon_threads = True

    def __init__(
        self, lock: threading.Lock, dlrs: list[dict[str, str]], mos: list[dict[str, str]]
    ) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.lock = lock
        self.dlrs = dlrs
        self.mos = mos

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _CollectorHandler(BaseHTTPRequestHandler):
    server: _Collector

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        # keep_blank_values: an empty %A is information too; latin-1 keeps bytes intact
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True, encoding="latin-1"))
        with self.server.lock:
            (self.server.dlrs if url.path == "/dlr" else self.server.mos).append(query)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class KannelClient:
    """bearerbox + smsbox bound to an SMPP server (the gateway) as one customer.

    ::

        with KannelClient(tmp, "127.0.0.1", gw_port, "kannel", "secret") as k:
            k.send("4915112345678", "hello")
    """

    def __init__(
        self,
        workdir: Path,
        smsc_host: str,
        smsc_port: int,
        system_id: str,
        password: str,
        *,
        transceiver: bool = True,
        log_level: int = 0,
        bind_timeout: float = 60.0,
        enquire_link_interval: int = 30,
        extra_smsc: dict[str, str | int | bool] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.smsc_host = smsc_host
        self.smsc_port = smsc_port
        self.system_id = system_id
        self.password = password
        self.transceiver = transceiver
        self.log_level = log_level
        self.bind_timeout = bind_timeout
        self.enquire_link_interval = enquire_link_interval
        self.extra_smsc = dict(extra_smsc or {})
        self.bearerbox_bin = find_kannel_binary("bearerbox")
        self.smsbox_bin = find_kannel_binary("smsbox")
        self.admin_port = 0
        self.smsbox_port = 0
        self.sendsms_port = 0
        self.conf_path = self.workdir / "kannel.conf"
        self._bearerbox: ManagedProcess | None = None
        self._smsbox: ManagedProcess | None = None
        self._collector: _Collector | None = None
        # Outlive stop(): reports stay readable after the with-block.
        self._lock = threading.Lock()
        self._dlrs: list[dict[str, str]] = []
        self._mos: list[dict[str, str]] = []

    # ------------------------------------------------------------ files
    @property
    def bearerbox_log(self) -> Path:
        return self.workdir / "bearerbox.log"

    @property
    def smsbox_log(self) -> Path:
        return self.workdir / "smsbox.log"

    @property
    def smsc_log(self) -> Path:
        return self.workdir / "smsc.log"

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every Kannel log, for failure messages."""
        parts = []
        for path in (
            self.smsc_log,
            self.bearerbox_log,
            self.smsbox_log,
            self.workdir / "bearerbox.out",
            self.workdir / "smsbox.out",
        ):
            try:
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            except OSError:
                tail = "(none)"
            parts.append(f"--- {path} (last {lines} lines) ---\n{tail}")
        return "\n".join(parts)

    def render_config(self) -> str:
        """kannel.conf text; groups separated by exactly one blank line."""
        core: dict[str, str | int | bool] = {
            "admin-port": self.admin_port,
            "admin-password": ADMIN_PASSWORD,
            "status-password": ADMIN_PASSWORD,
            "admin-interface": "127.0.0.1",
            "admin-allow-ip": "127.0.0.1",
            "smsbox-port": self.smsbox_port,
            "smsbox-interface": "127.0.0.1",
            "box-allow-ip": "127.0.0.1",
            "log-file": str(self.bearerbox_log),
            "log-level": self.log_level,
            "access-log": str(self.workdir / "bearerbox-access.log"),
            "dlr-storage": "internal",
            "sms-resend-freq": 5,
        }
        base: dict[str, str | int | bool] = {
            "smsc": "smpp",
            "smsc-id": SMSC_ID,
            "host": self.smsc_host,
            "smsc-username": self.system_id,
            "smsc-password": self.password,
            "system-type": "",
            "interface-version": 34,
            "enquire-link-interval": self.enquire_link_interval,
            "reconnect-delay": 2,
            "max-pending-submits": 10,
            "log-file": str(self.smsc_log),
            "log-level": self.log_level,
            **self.extra_smsc,
        }
        if self.transceiver:
            smscs = [{**base, "port": self.smsc_port, "transceiver-mode": True}]
        else:
            smscs = [
                {**base, "port": self.smsc_port},
                {**base, "receive-port": self.smsc_port},
            ]
        collector = f"http://127.0.0.1:{self._collector.port}" if self._collector else ""
        smsbox: dict[str, str | int | bool] = {
            "bearerbox-host": "127.0.0.1",
            "bearerbox-port": self.smsbox_port,
            "sendsms-port": self.sendsms_port,
            "sendsms-interface": "127.0.0.1",
            "log-file": str(self.smsbox_log),
            "log-level": self.log_level,
            "access-log": str(self.workdir / "smsbox-access.log"),
        }
        user: dict[str, str | int | bool] = {
            "username": SENDSMS_USER,
            "password": SENDSMS_PASSWORD,
            "concatenation": True,
            "max-messages": 10,
            "user-allow-ip": "127.0.0.1",
        }
        # MO (deliver_sm that is not a receipt) goes to the collector; no reply SMS.
        service: dict[str, str | int | bool] = {
            "keyword": "default",
            "catch-all": True,
            "max-messages": 0,
            "get-url": f"{collector}/mo?from=%p&to=%P&text=%a&coding=%c&udh=%u&smsc=%i",
        }
        groups = [
            _group("core", core),
            *(_group("smsc", s) for s in smscs),
            _group("smsbox", smsbox),
            _group("sendsms-user", user),
            _group("sms-service", service),
        ]
        return "# written by tests/helpers/kannel.py\n\n" + "\n".join(groups)

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> KannelClient:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._collector = _Collector(self._lock, self._dlrs, self._mos)
            threading.Thread(
                target=self._collector.serve_forever, name="kannel-collector", daemon=True
            ).start()
            self.admin_port, self.smsbox_port, self.sendsms_port = (free_port() for _ in range(3))
            self.conf_path.write_text(self.render_config())
            self._bearerbox = ManagedProcess(
                "bearerbox",
                # -v: level on stdout (the .out file); the log-file gets log-level.
                [self.bearerbox_bin, "-v", "2", str(self.conf_path)],
                self.workdir / "bearerbox.out",
                cwd=self.workdir,
            )
            self._bearerbox.start()
            wait_for(
                lambda: port_open("127.0.0.1", self.smsbox_port),
                timeout=30,
                what="Kannel bearerbox (smsbox port)",
                proc=self._bearerbox,
            )
            self._smsbox = ManagedProcess(
                "smsbox",
                [self.smsbox_bin, "-v", "2", str(self.conf_path)],
                self.workdir / "smsbox.out",
                cwd=self.workdir,
            )
            self._smsbox.start()
            wait_for(
                lambda: port_open("127.0.0.1", self.sendsms_port),
                timeout=30,
                what="Kannel smsbox (sendsms port)",
                proc=self._smsbox,
            )
            self.wait_online(self.bind_timeout)
        except BaseException as exc:
            tails = self.log_tails()
            self.stop()
            if isinstance(exc, ServiceError):
                raise KannelError(f"{exc}\n{tails}") from exc
            raise

    def stop(self) -> None:
        """smsbox first, then bearerbox (it unbinds from the gateway on SIGTERM)."""
        for proc in (self._smsbox, self._bearerbox):
            if proc is not None:
                proc.stop(timeout=15)
        self._smsbox = self._bearerbox = None
        if self._collector is not None:
            self._collector.shutdown()
            self._collector.server_close()
            self._collector = None

    def kill_bearerbox(self) -> None:
        """SIGKILL bearerbox (crash tests); smsbox keeps trying to reconnect."""
        if self._bearerbox is not None and self._bearerbox.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._bearerbox.proc.pid, signal.SIGKILL)

    # ------------------------------------------------------------ status
    def _admin(self, path: str, timeout: float = 5.0) -> str:
        query = urllib.parse.urlencode({"password": ADMIN_PASSWORD})
        url = f"http://127.0.0.1:{self.admin_port}/{path}?{query}"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bytes(resp.read()).decode("utf-8", errors="replace")

    def smsc_states(self) -> list[str]:
        """Status text of each smsc connection (``online 12s``, ``connecting``, ...)."""
        root = ET.fromstring(self._admin("status.xml"))
        return [(s.findtext("status") or "").strip() for s in root.iter("smsc")]

    def status_text(self) -> str:
        """bearerbox's ``status.txt`` (counters per smsc), for diagnostics."""
        return self._admin("status.txt")

    def online(self) -> bool:
        """Every smsc group (one for TRX, two for TX + RX) is bound."""
        try:
            states = self.smsc_states()
        except (OSError, ET.ParseError):
            return False
        if any(s.startswith("dead") for s in states):
            # Kannel gives up for good after RINVPASWD / RINVSYSID.
            raise KannelError(f"Kannel gave up binding (smsc states {states})")
        want = 1 if self.transceiver else 2
        return len(states) == want and all(s.startswith("online") for s in states)

    def wait_online(self, timeout: float = 60.0) -> None:
        """Until the SMPP bind(s) to the gateway are up; KannelError with logs if not."""
        for proc in (self._bearerbox, self._smsbox):
            if proc is None or not proc.alive():
                raise KannelError("Kannel is not running")
        try:
            wait_for(self.online, timeout=timeout, what="Kannel SMPP bind", proc=self._bearerbox)
        except (ServiceError, KannelError) as exc:
            try:
                states = self.smsc_states()
            except (OSError, ET.ParseError) as err:
                states = [f"(status.xml unreadable: {err})"]
            raise KannelError(f"{exc}\nsmsc states: {states}\n{self.log_tails()}") from exc

    # ------------------------------------------------------------ traffic
    def send(
        self,
        to: str,
        text: str,
        *,
        sender: str = "12345",
        coding: int = 0,
        dlr_mask: int | None = None,
        ref: str = "",
        timeout: float = 15.0,
    ) -> None:
        """Submit ``text`` through smsbox's sendsms (coding 0 GSM, 1 8-bit, 2 UCS2).

        With ``dlr_mask`` the receipts reach `dlr_reports()`, tagged with ``ref``.
        Raises KannelError unless smsbox answers 202 "Accepted for delivery".
        """
        params: dict[str, str] = {
            "username": SENDSMS_USER,
            "password": SENDSMS_PASSWORD,
            "smsc": SMSC_ID,
            "from": sender,
            "to": to,
            "text": text,
            "charset": "UTF-8",
            "coding": str(coding),
        }
        if dlr_mask is not None:
            if self._collector is None:
                raise KannelError("KannelClient is not started")
            params["dlr-mask"] = str(dlr_mask)
            # Kannel fills the %-escapes: d type, A SMSC answer, F foreign (gateway) id.
            params["dlr-url"] = (
                f"http://127.0.0.1:{self._collector.port}/dlr?"
                f"ref={urllib.parse.quote(ref)}&type=%d&fid=%F&answer=%A&to=%p&from=%P"
            )
        url = f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms?" + urllib.parse.urlencode(
            params
        )
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                status, answer = resp.status, bytes(resp.read()).decode(errors="replace")
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read().decode(errors="replace")
        except OSError as exc:
            raise KannelError(f"sendsms request failed: {exc}\n{self.log_tails()}") from exc
        if status != 202 or "Accepted for delivery" not in answer:
            raise KannelError(
                f"smsbox refused the message: HTTP {status} {answer.strip()!r}\n{self.log_tails()}"
            )

    def dlr_reports(self) -> list[dict[str, str]]:
        """Delivery reports smsbox called back with (query parameters, in arrival order)."""
        with self._lock:
            return list(self._dlrs)

    def mo_messages(self) -> list[dict[str, str]]:
        """MO messages (deliver_sm that are not receipts) smsbox handed on."""
        with self._lock:
            return list(self._mos)

    def wait_dlrs(
        self, count: int, *, timeout: float = 30.0, dlr_type: int | None = None
    ) -> list[dict[str, str]]:
        """At least ``count`` delivery reports (of Kannel type ``dlr_type``: 1 delivered,
        2 failed, 4 buffered, 8 SMSC ack, 16 SMSC reject), waiting up to ``timeout``."""

        def matching() -> list[dict[str, str]]:
            reports = self.dlr_reports()
            if dlr_type is None:
                return reports
            return [d for d in reports if d.get("type") == str(dlr_type)]

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := matching()) >= count:
                return found
            time.sleep(0.2)
        raise KannelError(
            f"{len(matching())} of {count} delivery reports (type {dlr_type}) after "
            f"{timeout:.0f} s; all reports: {self.dlr_reports()}\n{self.log_tails()}"
        )
