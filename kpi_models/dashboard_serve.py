"""`mkpi serve`: the dashboard on a local address, for a browser that will not open file:// pages or a colleague
on the same machine.

Why so small: the dashboard is one self-contained file; serving it needs no application server, only the standard
library. It serves that one file (and nothing else of the folder, so the databases beside it are never exposed),
re-read on every request so a rebuilt dashboard shows on reload, on 127.0.0.1 by default. To publish it for others,
copy the file to any static host (docs/dashboard.md).
"""

from __future__ import annotations

import argparse
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050


def _handler(page: Path) -> type[BaseHTTPRequestHandler]:
    class DashboardHandler(BaseHTTPRequestHandler):
        """GET / (or /dashboard.html): the dashboard file; anything else 404."""

        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            if self.path.split("?", 1)[0] not in ("/", "/dashboard.html", "/index.html"):
                self.send_error(HTTPStatus.NOT_FOUND, "only the dashboard is served here")
                return
            try:
                body = page.read_bytes()
            except FileNotFoundError:
                self.send_error(HTTPStatus.NOT_FOUND, f"no dashboard at {page} yet: run `mkpi backfill` or `mkpi demo`")
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the standard library's signature
            return  # quiet: one line per request helps nobody reading the dashboard

    return DashboardHandler


def make_server(page: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """A server for `page` (port 0 picks a free one: tests)."""
    return ThreadingHTTPServer((host, port), _handler(page))


def serve_in_thread(page: Path, host: str = DEFAULT_HOST, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start serving in a background thread; returns the server (call .shutdown()) and its URL."""
    server = make_server(page, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/"


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
