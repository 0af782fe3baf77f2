"""`mkpi serve`: the dashboard on a local address, for a browser that will not open file:// pages or a colleague
on the same machine.

Why so small: the dashboard is one self-contained file; serving it needs no application server, only the standard
library. It serves that one file (and nothing else of the folder, so the databases beside it are never exposed),
re-read on every request so a rebuilt dashboard shows on reload, on 127.0.0.1 by default. To publish it for others,
copy the file to any static host (docs/dashboard.md).
"""

from __future__ import annotations

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
