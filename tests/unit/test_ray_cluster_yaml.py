"""ray-cluster.yaml is a valid Ray cluster-launcher file (Ray's own schema check)."""

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
