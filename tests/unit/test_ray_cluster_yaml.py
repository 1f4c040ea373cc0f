"""ray-cluster.yaml is a valid Ray cluster-launcher file (Ray's own schema check)
whose nodes all require Ray's token authentication."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.autoscaler._private.util import validate_config

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_launcher_file_passes_rays_schema() -> None:
    config = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    validate_config(config)  # raises on any unknown or malformed field
    assert config["provider"]["type"] == "local"
    assert config["provider"]["head_ip"] and len(config["provider"]["worker_ips"]) >= 1
    starts = " ".join(config["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6380" in starts, "workers join the head's GCS port"


def test_every_node_requires_the_token_and_the_dashboard_stays_on_loopback() -> None:
    config = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    token = "~/.local/share/smsgw/ray_auth_token"  # $SMSGW_HOME of the ssh user
    assert token in config["file_mounts"], "the token is copied to every node"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in config[key] if "ray start" in c)
        assert "RAY_AUTH_MODE=token" in start, key
        assert "RAY_AUTH_TOKEN_PATH=$HOME/.local/share/smsgw/ray_auth_token" in start, key
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
