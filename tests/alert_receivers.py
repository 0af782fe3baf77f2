"""Local receivers for the alert channels, started by the tests on 127.0.0.1: an SMTP server (aiosmtpd) and a Slack
incoming-webhook receiver.

The webhook receiver answers as Slack documents its incoming webhooks (https://api.slack.com/messaging/webhooks,
"Handling errors"): HTTP 200 with the body `ok` for a valid JSON payload; 400 `invalid_payload` for a body that is not
JSON, 400 `no_text` for a payload with neither `text` nor `blocks`, 404 `no_service` for an unknown webhook URL, and
429 with a Retry-After header when rate-limited (https://api.slack.com/docs/rate-limits: incoming webhooks allow one
message per second). `fail_next` queues such statuses, to test retries and failures.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.ports import free_port

WEBHOOK_PATH = "/services/T0SANDBOX/B0SANDBOX/sandboxWebhookSecret42"


@dataclass
class SlackReceiver:
    """What the webhook receiver got, and the answers it is told to give next."""

    url: str = ""
    payloads: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    fail_next: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def slack_receiver() -> Iterator[SlackReceiver]:
    state = SlackReceiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with state.lock:
                state.requests += 1
                queued = state.fail_next.pop(0) if state.fail_next else None
            if self.path != WEBHOOK_PATH:
                return self._answer(404, "no_service")
            if queued is not None:
                return self._answer(*queued)
            try:
                payload = json.loads(raw)
            except ValueError:
                return self._answer(400, "invalid_payload")
            if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
                return self._answer(400, "no_text")
            with state.lock:
                state.payloads.append(payload)
            return self._answer(200, "ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}{WEBHOOK_PATH}"
    # polled every 50 ms (as sandbox/httpserver.py's servers) instead of serve_forever's 0.5 s: shutdown() waits for
    # the next poll, up to half a second at the end of every test that used the receiver
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SmtpReceiver:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)


@contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    """aiosmtpd's Controller on a free 127.0.0.1 port; every accepted message is parsed and kept."""
    from aiosmtpd.controller import Controller

    state = SmtpReceiver(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
            state.messages.append(message_from_bytes(envelope.original_content or envelope.content))
            state.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname=state.host, port=state.port)
    controller.start()
    try:
        yield state
    finally:
        controller.stop()
