"""The shared HTTP server base: scripted faults, seeded fault profile, redacted log, clean stop.

Later reliability tests depend on each fault reaching the client exactly as a real network failure would,
so every fault kind is checked with a plain requests.Session over a real socket.
"""

import socket
import time

import pytest
import requests

from sandbox.httpserver import REDACTED, FaultProfile, Request, Response, SandboxServer, json_response


class EchoServer(SandboxServer):
    name = "echo"

    def handle(self, request: Request) -> Response:
        return json_response(200, {"path": request.path, "json": request.json})


@pytest.fixture()
def server():
    with EchoServer() as srv:
        yield srv


def test_binds_loopback_with_keep_alive_and_nodelay(server):
    assert server.url.startswith("http://127.0.0.1:")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        for _ in range(2):  # two requests on one connection: HTTP/1.1 keep-alive with Content-Length
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += sock.recv(4096)
    assert server.request_count == 2


def test_scripted_faults_in_order(server):
    session = requests.Session()
    server.add_fault("status", 429, {"error": {"code": 429}}, {"Retry-After": "7"})
    server.add_fault("reset")
    server.add_fault("stall", 0.3)
    server.add_fault("truncate")
    first = session.get(f"{server.url}/a")
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    with pytest.raises(requests.ConnectionError):
        session.get(f"{server.url}/b")
    started = time.perf_counter()
    assert session.get(f"{server.url}/c").json()["path"] == "/c"
    assert time.perf_counter() - started >= 0.3
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(f"{server.url}/d")
    assert session.get(f"{server.url}/e").status_code == 200
    assert [r.fault for r in server.requests] == ["status", "reset", "stall", "truncate", None]


def test_fault_profile_is_seeded():
    def statuses(seed: int) -> list[int]:
        with EchoServer() as srv:
            srv.fault_profile = FaultProfile(seed=seed, status_500=0.3, status_429=0.2)
            session = requests.Session()
            return [session.get(srv.url).status_code for _ in range(30)]

    first = statuses(3)
    assert first == statuses(3) and first != statuses(4)
    assert {200, 429, 500} == set(first)


def test_log_redacts_secrets(server):
    requests.post(f"{server.url}/index.php?token_auth=q-secret",
                  data={"token_auth": "f-secret", "idSite": "1"},
                  headers={"Authorization": "Bearer t-secret"})
    requests.post(f"{server.url}/j", json={"a": 1})
    form_entry, json_entry = server.requests
    assert form_entry.headers["authorization"] == REDACTED
    assert form_entry.query == {"token_auth": [REDACTED]}
    assert form_entry.form == {"token_auth": [REDACTED], "idSite": ["1"]}
    assert "secret" not in repr(form_entry)
    assert json_entry.json == {"a": 1}


def test_handler_errors_become_500_and_stop_closes_connections():
    class Broken(SandboxServer):
        def handle(self, request: Request) -> Response:
            raise RuntimeError("boom")

    srv = Broken().start()
    session = requests.Session()
    response = session.get(srv.url)
    assert response.status_code == 500 and "boom" in response.json()["error"]["message"]
    url = srv.url
    srv.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url, timeout=2)
