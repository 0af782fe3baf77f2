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
    assert {200, 429} < set(first) and set(first) - {200, 429} <= {500, 502, 503}


def test_fault_draws_follow_the_request_not_the_arrival_order():
    """A fault is drawn from (seed, request, how often it was seen): interleaving other requests (a retry caused
    elsewhere, another thread) changes nothing for a given request."""
    def faults(paths: list[str]) -> dict[str, list[str | None]]:
        with EchoServer() as srv:
            srv.fault_profile = FaultProfile(seed=5, status_500=0.3, status_429=0.2, truncate=0.1)
            session = requests.Session()
            for path in paths:
                try:
                    session.get(f"{srv.url}{path}")
                except requests.RequestException:
                    session = requests.Session()
            seen: dict[str, list[str | None]] = {}
            for entry in srv.requests:
                seen.setdefault(entry.path, []).append(entry.fault)
            return seen

    alone = faults(["/a"] * 12)
    mixed = faults(["/b", "/a", "/c"] * 12)
    assert alone["/a"] == mixed["/a"] and any(alone["/a"])


def test_half_the_429s_carry_retry_after_within_its_range():
    profile = FaultProfile(seed=2, status_429=1.0, retry_after_share=0.5, retry_after_seconds=1, retry_after_max=5)
    drawn = [profile.draw("GET /x") for _ in range(400)]
    assert {d[0] for d in drawn} == {"rate_limit"}
    with_header = [d[1] for d in drawn if d[1] is not None]
    assert 150 < len(with_header) < 250 and set(with_header) == {1, 2, 3, 4, 5}


def test_html_empty_rate_limit_and_server_error_faults_on_the_wire(server):
    session = requests.Session()
    server.add_fault("html")
    server.add_fault("empty")
    server.add_fault("rate_limit", None)
    server.add_fault("rate_limit", 4)
    server.add_fault("server_error", 503)
    html = session.get(f"{server.url}/a")
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html") and "<html" in html.text
    empty = session.get(f"{server.url}/b")
    assert empty.status_code == 200 and empty.content == b""
    no_header = session.get(f"{server.url}/c")
    assert no_header.status_code == 429 and "Retry-After" not in no_header.headers
    assert no_header.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    header = session.get(f"{server.url}/d")
    assert header.status_code == 429 and header.headers["Retry-After"] == "4"
    assert session.get(f"{server.url}/e").status_code == 503
    assert [r.retry_after for r in server.requests] == [None, None, None, 4.0, None]


def test_the_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MKPI_SANDBOX_FAULTS", "seed=3, status_429=0.2, retry_after_share=0.5, stall=0.02, "
                                              "retry_after_max=5")
    profile = FaultProfile.from_env()
    assert profile is not None
    assert (profile.seed, profile.status_429, profile.retry_after_share, profile.stall, profile.retry_after_max) == (
        3, 0.2, 0.5, 0.02, 5)
    with EchoServer() as srv:  # every server of `python -m sandbox` picks it up
        assert srv.fault_profile == profile
    monkeypatch.setenv("MKPI_SANDBOX_FAULTS", "status_429=lots")
    with pytest.raises(ValueError, match="status_429='lots' is not a number"):
        FaultProfile.from_env()
    monkeypatch.setenv("MKPI_SANDBOX_FAULTS", "bogus=1")
    with pytest.raises(ValueError, match="'bogus=1' is not name=value"):
        FaultProfile.from_env()
    monkeypatch.delenv("MKPI_SANDBOX_FAULTS")
    assert FaultProfile.from_env() is None and EchoServer().fault_profile is None


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
