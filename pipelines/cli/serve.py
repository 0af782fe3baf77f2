"""`mkpi serve`: the dashboard file on a local address (the server itself is kpi_models/dashboard_serve.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kpi_models.dashboard_serve import DEFAULT_HOST, DEFAULT_PORT, make_server


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", parents=[common], help="serve the dashboard on a local address",
                           description="Serve data/dashboard.html (MKPI_DASHBOARD_PATH) at http://127.0.0.1:8050/ "
                                       "until Ctrl-C; only that file is served. To publish it, copy the file to a "
                                       "static host (docs/dashboard.md).")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on ({DEFAULT_HOST}: this machine only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    serve.add_argument("--file", default=None, help="the dashboard file (default MKPI_DASHBOARD_PATH, else "
                                                    "data/dashboard.html)")


def cmd_serve(args: argparse.Namespace, debug: bool) -> int:
    """Serve until interrupted; says where, and warns when the file does not exist yet."""
    from kpi_models.dashboard import dashboard_path  # here: `mkpi --help` stays quick

    page = Path(args.file) if args.file else dashboard_path()
    server = make_server(page, args.host, args.port)
    where = f"http://{args.host}:{server.server_address[1]}/"
    print(f"Serving {page} at {where} (Ctrl-C to stop)" + ("" if page.exists() else
                                                             " — the file does not exist yet: run `mkpi demo`"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
