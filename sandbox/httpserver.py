"""The one HTTP server base shared by every sandbox platform server.

Why one base: every emulated API needs the same plumbing (loopback-only binding, keep-alive, a request
log to assert on, scripted faults to exercise retries), and getting the socket details right once matters:
without ``TCP_NODELAY`` each request pays about 40 ms of Nagle + delayed-ACK latency, because
``BaseHTTPRequestHandler`` writes headers and body separately. Subclasses only implement ``handle()``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

REDACTED = "REDACTED"
# Header and parameter names whose values are secrets; compared lower-case.
SECRET_NAMES = frozenset({"authorization", "token_auth", "developer-token", "x-goog-api-key", "cookie",
                          "hapikey", "access_token"})

# A scripted fault, consumed one per request before normal handling:
#   ("status", code, json_body[, headers])  answer with that status, body and headers
#   ("reset",)                              close the connection (TCP RST) without a response
#   ("stall", seconds)                      sleep, then answer normally
#   ("truncate",)                           normal response, Content-Length larger than the body, then close
Fault = tuple[Any, ...]


@dataclass(frozen=True)
class Request:
    """What a platform handler sees: the parsed request, with secrets still present."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    raw_query: str = ""

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded (Matomo merges it with the query)."""
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            return {}
        return urllib.parse.parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode(), dict(headers or {}))


_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error_body(status: int, message: str) -> dict[str, Any]:
    """Google's JSON error envelope, which google-api-core maps to its exception classes by code."""
    return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}}


@dataclass(frozen=True)
class LoggedRequest:
    """One entry of the request log, with secrets redacted so logs can be printed in test failures."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    headers: dict[str, str]
    form: dict[str, list[str]]
    fault: str | None


def _redact_params(params: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: ([REDACTED] * len(v) if k.lower() in SECRET_NAMES else list(v)) for k, v in params.items()}


@dataclass
class FaultProfile:
    """Seeded random faults, drawn for requests that find the scripted queue empty.

    Probabilities are per request and checked in the order reset, status_429, status_500, stall, truncate.
    The seed makes a flaky-network scenario reproducible, as long as requests arrive in the same order.
    """

    seed: int = 0
    reset: float = 0.0
    status_429: float = 0.0
    status_500: float = 0.0
    stall: float = 0.0
    truncate: float = 0.0
    stall_seconds: float = 0.2
    retry_after_seconds: int = 1
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> Fault | None:
        u = self._rng.random()
        edge = 0.0
        kinds = (("reset", self.reset), ("status_429", self.status_429), ("status_500", self.status_500),
                 ("stall", self.stall), ("truncate", self.truncate))
        for kind, p in kinds:
            edge += p
            if u >= edge:
                continue
            if kind == "status_429":
                retry_after = {"Retry-After": str(self.retry_after_seconds)}
                return ("status", 429, google_error_body(429, "Too many requests."), retry_after)
            if kind == "status_500":
                return ("status", 500, google_error_body(500, "Internal error encountered."), {})
            if kind == "stall":
                return ("stall", self.stall_seconds)
            return (kind,)
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: SandboxServer

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        # Without this each response waits ~40 ms for the client's delayed ACK (Nagle).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner._track(conn, add=True)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        self.owner._track(request, add=False)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server: _Server
    timeout = 60  # idle keep-alive connections give their thread back eventually

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; the server keeps its own structured log."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        parsed = urllib.parse.urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parsed.path,
            query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
            raw_query=parsed.query,
        )
        fault = owner._next_fault()
        owner._log(request, fault)
        if owner.latency_seconds > 0:
            time.sleep(owner.latency_seconds)
        kind = fault[0] if fault else None
        if kind == "reset":
            # SO_LINGER(on, 0) turns close() into a TCP RST: the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if kind == "status":
            status, payload = fault[1], fault[2] if len(fault) > 2 else None
            headers = dict(fault[3]) if len(fault) > 3 and fault[3] else {}
            body = json.dumps(payload).encode() if payload is not None else b""
            self._send(Response(status, body, headers))
            return
        if kind == "stall":
            time.sleep(float(fault[1]))
        elif kind not in (None, "truncate"):
            self._send(owner.error_response(500, f"unknown scripted fault {fault!r}"))
            return
        try:
            response = owner.handle(request)
        except Exception as exc:  # a handler bug must become a 500, not a hung client
            response = owner.error_response(500, f"sandbox handler error: {exc!r}")
        self._send(response, truncate=kind == "truncate")

    def _send(self, response: Response, truncate: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        declared = len(response.body) + (max(16, len(response.body)) if truncate else 0)
        self.send_header("Content-Length", str(declared))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()


class SandboxServer:
    """Base class: start/stop, ``url``, request log, scripted faults. Subclasses implement ``handle``."""

    name = "sandbox"

    def __init__(self) -> None:
        self.faults: queue.Queue[Fault] = queue.Queue()
        self.fault_profile: FaultProfile | None = None
        # Added to every response (a WAN round trip on loopback), e.g. 0.1 for the latency benchmark.
        self.latency_seconds: float = 0.0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._log_entries: list[LoggedRequest] = []
        self._connections: set[socket.socket] = set()

    # ---- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        # Keep-alive connections would otherwise keep being served by their threads after stop().
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{self.name} server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point the pipeline's connectors at this server."""
        return {}

    # ---- to implement --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        return self.error_response(404, f"No route for {request.method} {request.path}")

    def error_response(self, status: int, message: str) -> Response:
        """Google's error envelope by default; servers of non-Google APIs override it."""
        return json_response(status, google_error_body(status, message))

    # ---- faults and log ------------------------------------------------------------------------------

    def add_fault(self, *fault: Any) -> None:
        """Script one fault, e.g. ``add_fault("status", 429, body, {"Retry-After": "1"})``."""
        self.faults.put(tuple(fault))

    def _next_fault(self) -> Fault | None:
        try:
            return self.faults.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            return self.fault_profile.draw() if self.fault_profile is not None else None

    def _log(self, request: Request, fault: Fault | None) -> None:
        entry = LoggedRequest(
            method=request.method,
            path=request.path,
            query=_redact_params(request.query),
            json=request.json,
            headers={k: (REDACTED if k in SECRET_NAMES else v) for k, v in request.headers.items()},
            form=_redact_params(request.form),
            fault=str(fault[0]) if fault else None,
        )
        with self._lock:
            self._log_entries.append(entry)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log_entries)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log_entries)

    def clear_log(self) -> None:
        with self._lock:
            self._log_entries.clear()
