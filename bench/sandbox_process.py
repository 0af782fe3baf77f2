"""The sandbox in a process of its own, with latency on every response, for the latency benchmark.

Why a separate process: the sandbox's servers compute the world in Python; in the benchmark's own process
they would compete with the connectors for the GIL and the measured wall time would be the sandbox's, not
the pipeline's. The child prints the environment as one JSON line, then serves until its stdin closes.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import ROOT


def _delay_grpc(server: Any, latency: float) -> None:
    """Delay each Google Ads RPC by `latency` before answering (as the network would)."""
    search_stream, search = server._search_stream, server._search

    def delayed_stream(*args: Any) -> Any:
        time.sleep(latency)
        return search_stream(*args)

    def delayed_search(*args: Any) -> Any:
        time.sleep(latency)
        return search(*args)

    server._search_stream, server._search = delayed_stream, delayed_search


def serve(latency: float, profile: str) -> None:
    """In the child: start every server, add the latency, print the env and today's date, wait for stdin EOF."""
    from sandbox.launcher import start_sandbox

    many = "profile" in inspect.signature(start_sandbox).parameters
    sandbox = start_sandbox(profile=profile) if many else start_sandbox()
    try:
        for server in sandbox.servers:
            if hasattr(server, "latency_seconds"):
                server.latency_seconds = latency
            elif server.name == "google_ads":
                _delay_grpc(server, latency)
        print(json.dumps({"env": sandbox.env, "today": sandbox.world.today.isoformat(),
                          "profile": profile if many else "default"}), flush=True)
        sys.stdin.read()
    finally:
        sandbox.stop()


@contextmanager
def sandbox_process(latency: float, profile: str = "many") -> Iterator[dict[str, Any]]:
    """Start the child; yield {"env", "today", "profile"}; stop it by closing its stdin."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.sandbox_process", str(latency), profile], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process exited before printing its environment")
        yield json.loads(line)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    serve(float(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "many")
