"""A free 127.0.0.1 port for a server that a test starts later in another process (webserver, code server,
PostgreSQL, SMTP receiver).

Such a port is chosen, released, then bound by the server seconds later. A port from the kernel's ephemeral range
(``bind(("127.0.0.1", 0))``) can be taken in between by any outgoing connection or ``bind(0)`` of the other xdist
workers: their sandbox servers and HTTP clients open thousands of connections a minute. It happened in a fresh-clone
CI run: dagster-webserver exited with "[Errno 98] address already in use" on the port test_dagster_ui had chosen
while its run fetched GA4. So the port is chosen below the ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``), which the kernel never hands out on its own, in a block per xdist
worker, and checked free by a bind. Where the range leaves no room below it, the kernel's choice is kept.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_BLOCK = 1_000  # ports per xdist worker
_FIRST = 20_000  # below this: well-known and registered services' usual ports


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def _binds(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port that is free now and that no outgoing connection or ``bind(0)`` will take before the server binds it."""
    start = _FIRST + _worker_index() * _BLOCK
    stop = min(start + _BLOCK, _ephemeral_start())
    if stop - start >= 100:
        for port in random.sample(range(start, stop), 50):
            if _binds(port):
                return port
    with socket.socket() as sock:  # no room below the ephemeral range: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
