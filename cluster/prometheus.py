"""A local Prometheus (Debian's ``prometheus``) scraping the gateway's metrics.

The scrape configuration and the Grafana dashboard ship in ``cluster/observe``;
``smsgw observe`` (``make observe``) runs Prometheus with that configuration,
its targets replaced by the Ray nodes' metrics endpoints.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from smsgw.cluster.procs import ManagedProcess, ServiceError, port_open, wait_for

OBSERVE_DIR = Path(__file__).resolve().parent / "observe"
SCRAPE_CONFIG = OBSERVE_DIR / "prometheus.yml"
DASHBOARD = OBSERVE_DIR / "grafana-dashboard.json"
HEAD_RESOURCE = "node:__internal_head__"  # in ray.nodes()' Resources of the head node


def prometheus_executable() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise ServiceError(
            "the `prometheus` command is missing: `make setup` installs Debian's prometheus"
        )
    return found


def scrape_config(targets: list[str], scrape_interval_s: float | None = None) -> dict[str, Any]:
    """The shipped configuration with the gateway job's targets (``host:port``) filled in."""
    config: dict[str, Any] = yaml.safe_load(SCRAPE_CONFIG.read_text())
    for job in config["scrape_configs"]:
        if job["job_name"] == "smsgw":
            job["static_configs"] = [{"targets": list(targets)}]
    if scrape_interval_s is not None:
        interval = f"{int(scrape_interval_s * 1000)}ms"
        config["global"]["scrape_interval"] = interval
        config["global"]["evaluation_interval"] = interval
    return config


def ray_metrics_targets(nodes: list[dict[str, Any]], local: str | None = None) -> list[str]:
    """Every live Ray node's metrics agent, from ``ray.nodes()``.

    ``local`` (``127.0.0.1:port``, the embedded head's endpoint from the
    runtime file) is where the head node is scraped instead: it may serve its
    metrics on loopback only, whatever address Ray gives the node.
    """
    local_port = local.rpartition(":")[2] if local else ""
    targets = set()
    for n in nodes:
        if not (n.get("Alive") and n.get("MetricsExportPort")):
            continue
        host, port = str(n["NodeManagerAddress"]), str(n["MetricsExportPort"])
        head = HEAD_RESOURCE in (n.get("Resources") or {})
        targets.add(local if local and head and port == local_port else f"{host}:{port}")
    return sorted(targets)


def dashboard_queries(dashboard: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the Grafana dashboard, rows included."""
    board = dashboard if dashboard is not None else json.loads(DASHBOARD.read_text())
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((str(panel.get("title", "")), str(target["expr"])))
            walk(panel.get("panels", []))

    walk(board.get("panels", []))
    return found


class EmbeddedPrometheus:
    def __init__(
        self,
        data_dir: Path,
        targets: list[str],
        *,
        port: int = 9090,
        scrape_interval_s: float | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.targets = targets
        self.port = port
        self.scrape_interval_s = scrape_interval_s
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"port {self.port} on 127.0.0.1 is taken; Prometheus cannot use it")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(self.targets, self.scrape_interval_s)))
        argv = [
            prometheus_executable(),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process = ManagedProcess("prometheus", argv, self.data_dir / "prometheus.log")
        self.process.start()
        wait_for(self._ready, timeout=timeout, what="Prometheus", proc=self.process)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=15)
            self.process = None
