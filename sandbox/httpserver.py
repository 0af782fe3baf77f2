"""The one HTTP server base shared by every sandbox platform server.

Why one base: every emulated API needs the same plumbing (loopback-only binding, keep-alive, a request
log to assert on, scripted faults to exercise retries), and getting the socket details right once matters:
without ``TCP_NODELAY`` each request pays about 40 ms of Nagle + delayed-ACK latency, because
``BaseHTTPRequestHandler`` writes headers and body separately. Subclasses only implement ``handle()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import random
import select
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
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
#   ("rate_limit", retry_after | None)      the platform's 429 (``rate_limit_response``), Retry-After or none
#   ("server_error", status)                the platform's 5xx (``server_error_response``)
#   ("html",) / ("empty",)                  status 200 with an HTML page (``html_page_response``) / no body
#   ("envelope",)                           the platform's error envelope (``error_envelope_response``)
# Hostile answers (issue #19), which no platform sends on purpose but a broken proxy, a misrouted request or an
# attacker on the path can; the client must bound them:
#   ("oversized", bytes)                    status 200, a JSON body of that many bytes (Content-Length declared)
#   ("endless",)                            status 200, a chunked JSON array that never ends (until the client goes)
#   ("drip", bytes_per_second)              the normal answer, its body sent that many bytes per second
#   ("gzip_bomb", bytes)                    status 200, Content-Encoding gzip: a few hundred KB inflating to `bytes`
#   ("redirect", status, origin | None)     that 3xx status, Location the same path and query on `origin` (another
#                                           server, "http://localhost:PORT"), or relative (None: the same origin)
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
    retry_after: float | None = None  # the Retry-After a 429 fault carried (None: no header, or no 429)


def _redact_params(params: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: ([REDACTED] * len(v) if k.lower() in SECRET_NAMES else list(v)) for k, v in params.items()}


FAULTS_ENV = "MKPI_SANDBOX_FAULTS"
SERVER_ERROR_STATUSES = (500, 502, 503)
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><h1>Sign in</h1>"
             b"<p>Your session has expired. Please sign in again.</p></body></html>\n")


@dataclass
class FaultProfile:
    """Seeded random faults, drawn for requests that find the scripted queue empty.

    Probabilities are per request and checked in the order reset, status_429, status_500, stall, truncate,
    html, empty, envelope, oversized, endless, drip (the hostile answers come last, so adding them changed no
    earlier seed's draws). Each server renders a drawn fault in its platform's own shape (``rate_limit_response``,
    ``server_error_response``, ``error_envelope_response``): GA4's RESOURCE_EXHAUSTED quota message, HubSpot's
    ``policyName`` body, Matomo's ``{"result": "error"}`` envelope with status 200.

    Why draws are keyed by the request, not by arrival order: a fault is drawn from (seed, request, how many times
    this request was seen), so a retry caused by something else (a slow machine, another source's fault, a request
    reordered) never shifts which faults every later request gets. The same seed and the same requests give the
    same faults, whatever the timing: a chaos run is reproducible.
    """

    seed: int = 0
    reset: float = 0.0
    status_429: float = 0.0
    status_500: float = 0.0
    stall: float = 0.0
    truncate: float = 0.0
    html: float = 0.0  # status 200 with an HTML page (a proxy's or a login page)
    empty: float = 0.0  # status 200 with an empty body
    envelope: float = 0.0  # the platform's error envelope (Matomo: status 200 {"result": "error"})
    retry_after_share: float = 1.0  # share of 429s that carry Retry-After (the others carry none)
    stall_seconds: float = 0.2
    retry_after_seconds: int = 1  # Retry-After is drawn from retry_after_seconds..retry_after_max
    retry_after_max: int | None = None
    oversized: float = 0.0  # status 200 with a body of oversized_bytes
    endless: float = 0.0  # status 200 with a chunked body that never ends
    drip: float = 0.0  # the normal answer at drip_bytes_per_second
    oversized_bytes: int = 200 * 1024 * 1024
    drip_bytes_per_second: float = 1.0
    _seen: dict[str, int] = field(init=False, repr=False, compare=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, repr=False, compare=False, default_factory=threading.Lock)

    @classmethod
    def parse(cls, text: str) -> FaultProfile:
        """``"seed=3,status_429=0.2,retry_after_share=0.5,stall=0.02"`` (the MKPI_SANDBOX_FAULTS form)."""
        types = {f.name: f.type for f in fields(cls) if not f.name.startswith("_")}
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep or name not in types:
                raise ValueError(f"{FAULTS_ENV}: {item!r} is not name=value with a name among {sorted(types)}")
            kind = str(types[name])
            try:
                values[name] = int(raw) if kind in ("int", "int | None") else float(raw)
            except ValueError:
                raise ValueError(f"{FAULTS_ENV}: {name}={raw!r} is not a number") from None
        return cls(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultProfile | None:
        """The profile MKPI_SANDBOX_FAULTS describes, or None when it is unset (a fault-free sandbox)."""
        text = (os.environ if environ is None else environ).get(FAULTS_ENV, "").strip()
        return cls.parse(text) if text else None

    def draw(self, key: str = "") -> Fault | None:
        """The fault for the next request ``key`` (method, path, query and body), or None."""
        with self._lock:
            occurrence = self._seen.get(key, 0)
            self._seen[key] = occurrence + 1
        rng = random.Random(f"{self.seed}|{key}|{occurrence}")
        u = rng.random()
        edge = 0.0
        kinds = (("reset", self.reset), ("status_429", self.status_429), ("status_500", self.status_500),
                 ("stall", self.stall), ("truncate", self.truncate), ("html", self.html), ("empty", self.empty),
                 ("envelope", self.envelope), ("oversized", self.oversized), ("endless", self.endless),
                 ("drip", self.drip))
        for kind, p in kinds:
            edge += p
            if u >= edge:
                continue
            if kind == "status_429":
                if rng.random() >= self.retry_after_share:
                    return ("rate_limit", None)
                return ("rate_limit", rng.randint(self.retry_after_seconds,
                                                  max(self.retry_after_seconds, self.retry_after_max or 0)))
            if kind == "status_500":
                return ("server_error", rng.choice(SERVER_ERROR_STATUSES))
            if kind == "stall":
                return ("stall", self.stall_seconds)
            if kind == "oversized":
                return ("oversized", self.oversized_bytes)
            if kind == "drip":
                return ("drip", self.drip_bytes_per_second)
            return (kind,)
        return None


def fault_retry_after(fault: Fault | None) -> float | None:
    """The Retry-After seconds a fault answers with: a drawn rate limit's, or a scripted status's header."""
    if not fault:
        return None
    if fault[0] == "quota_temporary":  # Google Ads' retry_delay, 1 s unless scripted
        return float(fault[1]) if len(fault) > 1 else 1.0
    if fault[0] == "rate_limit" and len(fault) > 1 and fault[1] is not None:
        return float(fault[1])
    if fault[0] == "status" and len(fault) > 3 and fault[3]:
        value = dict(fault[3]).get("Retry-After")
        return float(value) if value is not None else None
    return None


def request_key(request: Request) -> str:
    """What identifies a request for keyed fault draws: method, path, query and a digest of the body."""
    digest = hashlib.sha256(request.body).hexdigest()[:16] if request.body else ""
    return f"{request.method} {request.path}?{request.raw_query} {digest}"


def _gzip_bomb(size: int) -> bytes:
    """A JSON object padded with `size` spaces (valid JSON once inflated), gzip-compressed (RFC 1952) about 1000:1."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    parts = [packer.compress(b"{}")]
    piece = b" " * (1024 * 1024)
    for _ in range(size // len(piece)):
        parts.append(packer.compress(piece))
    parts.append(packer.compress(b" " * (size % len(piece))))
    parts.append(packer.flush())
    return b"".join(parts)


_RENDERED_FAULTS = frozenset({"rate_limit", "server_error", "html", "empty", "envelope"})


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

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a stall past its timeout, a reset) is expected; anything else is printed."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


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
        if self._client_gone():
            # The client gave up before this thread got to its request (its deadline passed while the machine was
            # busy) and closed the connection: no fault is drawn for it and nothing is answered, so the log never
            # shows a 429 (with its Retry-After) that no client received. Logged as "abandoned": it did arrive.
            owner._log(request, ("abandoned",))
            self.close_connection = True
            return
        fault = owner._next_fault(request)
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
        if kind == "redirect":
            # RFC 9110 section 15.4: a 3xx answer's Location may be absolute or relative (section 10.2.2)
            target = request.path + (f"?{request.raw_query}" if request.raw_query else "")
            origin = fault[2] if len(fault) > 2 else None
            self._send(Response(int(fault[1]), b"", {"Location": f"{origin.rstrip('/')}{target}" if origin else target},
                                content_type="text/html"))
            return
        if kind == "oversized":
            with contextlib.suppress(OSError):  # the client stops reading and goes: expected
                self._send_oversized(int(fault[1]))
            self.close_connection = True
            return
        if kind == "endless":
            with contextlib.suppress(OSError):
                self._send_endless()
            self.close_connection = True
            return
        if kind == "gzip_bomb":
            self._send(Response(200, _gzip_bomb(int(fault[1])), {"Content-Encoding": "gzip"}))
            return
        rendered = owner.fault_response(fault) if kind in _RENDERED_FAULTS else None
        if rendered is not None:
            self._send(rendered)
            return
        if kind == "stall":
            time.sleep(float(fault[1]))
        elif kind not in (None, "truncate", "drip"):
            self._send(owner.error_response(500, f"unknown scripted fault {fault!r}"))
            return
        try:
            response = owner.handle(request)
        except Exception as exc:  # a handler bug must become a 500, not a hung client
            response = owner.error_response(500, f"sandbox handler error: {exc!r}")
        if kind == "drip":
            with contextlib.suppress(OSError):
                self._send(response, drip=float(fault[1]))
            self.close_connection = True
            return
        self._send(response, truncate=kind == "truncate")

    def _client_gone(self) -> bool:
        """True when the client has already closed (FIN: an empty peek) or reset its end of the connection."""
        # poll first: on a socket with a timeout, Python waits for data before any recv, MSG_DONTWAIT or not (and
        # poll, unlike select, takes any descriptor number)
        poller = select.poll()
        poller.register(self.connection, select.POLLIN)
        try:
            if not poller.poll(0):
                return False  # open, nothing more sent: the client waits for its answer
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _send(self, response: Response, truncate: bool = False, drip: float = 0.0) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        declared = len(response.body) + (max(16, len(response.body)) if truncate else 0)
        self.send_header("Content-Length", str(declared))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if truncate or drip:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if drip:
            self.wfile.flush()
            self._drip(response.body, drip)
            return
        self.wfile.write(response.body)
        self.wfile.flush()

    def _drip(self, body: bytes, per_second: float) -> None:
        """The body a byte at a time, `per_second` bytes a second: every read the client makes gets a byte well
        within any per-read timeout, so only a total deadline stops it."""
        for i in range(len(body)):
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()
            time.sleep(1.0 / per_second)

    def _send_oversized(self, size: int) -> None:
        """A JSON object of exactly `size` bytes, written in 64 KB pieces (never held whole by the server)."""
        head, tail = b'{"rows": [], "padding": "', b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(head)
        left = max(0, size - len(head) - len(tail))
        piece = b"x" * 65536
        while left > 0:
            self.wfile.write(piece[:left])
            left -= min(left, len(piece))
        self.wfile.write(tail)
        self.wfile.flush()

    def _send_endless(self) -> None:
        """A chunked JSON array whose elements never stop coming (chunked framing, RFC 9112 section 7.1)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        element = b'{"date": "2026-03-01", "clicks": 1},' * 1024
        chunk = f"{len(element):x}\r\n".encode() + element + b"\r\n"
        self.wfile.write(b"1\r\n[\r\n")
        while True:
            self.wfile.write(chunk)


class SandboxServer:
    """Base class: start/stop, ``url``, request log, scripted faults. Subclasses implement ``handle``."""

    name = "sandbox"

    def __init__(self) -> None:
        self.faults: queue.Queue[Fault] = queue.Queue()
        # MKPI_SANDBOX_FAULTS makes every server of `python -m sandbox` (and the launcher) flaky, reproducibly.
        self.fault_profile: FaultProfile | None = FaultProfile.from_env()
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

    def _next_fault(self, request: Request | None = None) -> Fault | None:
        try:
            return self.faults.get_nowait()
        except queue.Empty:
            pass
        profile = self.fault_profile
        return profile.draw(request_key(request) if request is not None else "") if profile is not None else None

    # ---- how a drawn fault looks on this platform (servers of non-Google APIs override these) -----------

    def fault_response(self, fault: Fault) -> Response | None:
        """The response of a rendered fault kind (see the Fault comment), None for an unknown kind."""
        kind = fault[0]
        if kind == "rate_limit":
            return self.rate_limit_response(fault[1] if len(fault) > 1 else None)
        if kind == "server_error":
            return self.server_error_response(int(fault[1]) if len(fault) > 1 else 500)
        if kind == "html":
            return self.html_page_response()
        if kind == "empty":
            return Response(200, b"")
        if kind == "envelope":
            return self.error_envelope_response()
        return None

    def rate_limit_response(self, retry_after: int | None) -> Response:
        """429 in Google's envelope; Retry-After only when given (Google APIs often send none)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return json_response(429, google_error_body(429, "Too many requests."), headers)

    def server_error_response(self, status: int) -> Response:
        messages = {500: "Internal error encountered.", 502: "Bad Gateway",
                    503: "The service is currently unavailable."}
        return json_response(status, google_error_body(status, messages.get(status, "Backend Error")))

    def html_page_response(self) -> Response:
        """Status 200 with an HTML page: what a captive proxy or an expired-session redirect serves."""
        return Response(200, HTML_PAGE, content_type="text/html; charset=utf-8")

    def error_envelope_response(self) -> Response:
        """The platform's own error envelope; Google APIs have none beyond their error status."""
        return self.server_error_response(503)

    def _log(self, request: Request, fault: Fault | None) -> None:
        entry = LoggedRequest(
            method=request.method,
            path=request.path,
            query=_redact_params(request.query),
            json=request.json,
            headers={k: (REDACTED if k in SECRET_NAMES else v) for k, v in request.headers.items()},
            form=_redact_params(request.form),
            fault=str(fault[0]) if fault else None,
            retry_after=fault_retry_after(fault),
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
