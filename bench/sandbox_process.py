"""The sandbox in processes of its own, with latency on every response, for the latency benchmark.

Why separate processes: the sandbox's servers compute the world in Python; in the benchmark's own process
they would compete with the connectors for the GIL and the measured wall time would be the sandbox's, not
the pipeline's. One process per platform, as the real platforms are separate services: in one process, a
platform computing a year of report rows held up HubSpot's answers. Each child prints its environment as one
JSON line, then serves until its stdin closes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
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


def serve(latency: float, profile: str, platform: int | None = None) -> None:
    """In the child: start every server (or only SERVER_FACTORIES[platform]), add the latency, print the env
    and today's date, wait for stdin EOF."""
    from sandbox.launcher import SERVER_FACTORIES, Sandbox, start_sandbox
    from sandbox.world import World

    if platform is None:
        sandbox = start_sandbox(profile=profile)
    else:
        world = World(profile=profile)
        server = SERVER_FACTORIES[platform](world)
        server.start()
        sandbox = Sandbox(world, [server])
    try:
        for server in sandbox.servers:
            if hasattr(server, "latency_seconds"):
                server.latency_seconds = latency
            elif server.name == "google_ads":
                _delay_grpc(server, latency)
        print(json.dumps({"env": sandbox.env, "today": sandbox.world.today.isoformat(), "profile": profile}),
              flush=True)
        sys.stdin.read()
    finally:
        sandbox.stop()


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.sandbox_process", *args], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **env} if env else None)


def _stop(proc: subprocess.Popen) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def sandbox_process(latency: float, profile: str = "many", platforms: Sequence[str] | None = None,
                    env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Start one child per platform (or per platform named in `platforms`, by server name: "gsc", "ga4", ...),
    `env` added to the children's environment (sandbox knobs such as MKPI_SANDBOX_GSC_BIG_SITE); yield
    {"env" (all of them), "today", "profile"}; stop them by closing their stdin."""
    from sandbox.launcher import SERVER_FACTORIES

    indexes = [i for i, factory in enumerate(SERVER_FACTORIES)
               if platforms is None or getattr(factory, "name", None) in platforms]
    procs = [_start([str(latency), profile, str(i)], env) for i in indexes]
    try:
        started: dict[str, Any] = {"env": {}, "profile": profile}
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("a sandbox process exited before printing its environment")
            answer = json.loads(line)
            started["env"].update(answer["env"])
            started["today"] = answer["today"]
        yield started
    finally:
        for proc in procs:
            _stop(proc)


if __name__ == "__main__":
    serve(float(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "many",
          int(sys.argv[3]) if len(sys.argv) > 3 else None)
