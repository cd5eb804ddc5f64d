"""Every listening socket of paycore and its dev stack keeps a deep accept queue. With aiohttp's
default (128), a burst of new connections while the loop was busy overflowed the queue, the kernel
dropped the SYNs and the clients' SYN retransmission came a second later: in the bench, one payment
in a few hundred took 1.05 s (TcpExtListenOverflows rose by hundreds per run; none since)."""
from __future__ import annotations

import subprocess

from paycore.runtime import LISTEN_BACKLOG


def _accept_queue(port: int) -> int:
    """A listening socket's accept-queue limit, as ``ss`` reports it (Send-Q of a LISTEN row)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows, f"nothing listens on {port}"
    return int(rows[0][2])


async def test_paycore_and_every_simulator_listen_with_a_deep_accept_queue(stack):
    with open("/proc/sys/net/core/somaxconn") as f:
        expected = min(LISTEN_BACKLOG, int(f.read()))   # the kernel caps what listen() asks for
    assert expected > 128
    assert _accept_queue(stack.port) == expected
    for name, s in stack.sim_settings.items():
        assert _accept_queue(s.port) == expected, name
