"""``python -m sandbox``: serve the synthetic shop on 127.0.0.1 until Ctrl-C or SIGTERM.

It prints ``export NAME=value`` lines for the connectors, e.g. ``python -m sandbox > /tmp/sandbox.env &``
then ``source /tmp/sandbox.env`` in the shell that runs the pipeline.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
from datetime import date
from types import FrameType

from sandbox.launcher import start_sandbox
from sandbox.world import PROFILES, World


def _parse_properties(value: str) -> dict[str, float]:
    """``123456789=1.0,987654321=0.3`` -> property id to traffic scale (scale defaults to 1)."""
    properties: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        pid, _, scale = item.partition("=")
        properties[pid] = float(scale) if scale else 1.0
    return properties


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--today", type=date.fromisoformat, default=None,
                        help="last day with data (YYYY-MM-DD); default: today in Europe/Paris")
    parser.add_argument("--restatement-days", type=int, default=0)
    parser.add_argument("--profile", choices=PROFILES, default="default",
                        help="accounts to serve: default (one per platform) or many (50 GA4 properties, 20 Search "
                             "Console sites, 20 Google Ads customers in four currencies, 10 Matomo sites)")
    parser.add_argument("--ga4-properties", type=_parse_properties, default=None,
                        help="comma-separated id[=scale] list (default: the profile's properties)")
    parser.add_argument("--exec", dest="command", nargs=argparse.REMAINDER, default=None,
                        help="run this command with the sandbox environment, then stop (used by `make dev`)")
    args = parser.parse_args(argv)

    world = World(seed=args.seed, today=args.today, restatement_days=args.restatement_days,
                  ga4_properties=args.ga4_properties, profile=args.profile)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with start_sandbox(world) as sandbox:
        if args.command:
            print(f"sandbox: {' '.join(f'{k}={v}' for k, v in sandbox.env.items())}", file=sys.stderr)
            child = subprocess.Popen(args.command, env={**os.environ, **sandbox.env})
            # the child's end or a signal, whichever comes first (no polling: the sandbox stops as the child does)
            threading.Thread(target=lambda: (child.wait(), stop.set()), daemon=True).start()
            stop.wait()
            if child.poll() is None:
                child.terminate()
            return child.wait()
        for name, value in sandbox.env.items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"# {world!r}; Ctrl-C to stop", file=sys.stderr)
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
