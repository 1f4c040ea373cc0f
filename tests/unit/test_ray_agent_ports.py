"""A node's agents get their ports on the command line (cluster/ray_local.py)."""

from __future__ import annotations

from pathlib import Path

from smsgw.cluster.netns import join_command
from smsgw.cluster.procs import free_port
from smsgw.cluster.ray_local import EmbeddedRay

AGENT_PORTS = (
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)


def test_every_agent_port_is_named_so_the_raylet_never_waits_for_port_files(
    tmp_path: Path,
) -> None:
    """A raylet whose agents choose their ports waits for their port files 15 s at
    most, then exits (ray-project/ray#65983): a head restarted under load lost its
    raylet so, and the head's listener never came back. Named ports skip the wait."""
    head = EmbeddedRay(tmp_path, port=free_port(), token_path=tmp_path / "tok")
    argv, _env = head.head_command()
    for flag in AGENT_PORTS:
        given = [a for a in argv if a.startswith(f"{flag}=")]
        assert len(given) == 1 and int(given[0].split("=", 1)[1]) > 0, flag
    ports = [int(a.split("=", 1)[1]) for a in argv if a.startswith(AGENT_PORTS)]
    assert len(set(ports)) == len(ports), "each agent its own port"


def test_a_host_of_the_netns_lab_names_its_agents_ports_too() -> None:
    """The lab's hosts join with ``ray start`` of their own (cluster/netns.py): the same
    15-s wait would lose a host whose agents start slowly on a loaded machine."""
    argv = join_command("10.77.0.11:6379", "10.77.0.12")
    ports = [int(a.split("=", 1)[1]) for a in argv if a.startswith(AGENT_PORTS)]
    assert len(ports) == len(AGENT_PORTS) and len(set(ports)) == len(ports)
    assert "--address=10.77.0.11:6379" in argv
