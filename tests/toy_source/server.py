"""The toy platform's server: daily visits per site over a date range, as JSON, on 127.0.0.1.

Not an emulation of a real API (the toy platform does not exist): `GET /v1/sites/{site}/visits?start=&end=` answers
`{"site": ..., "rows": [{"date": "YYYY-MM-DD", "visits": n}, ...]}` with the days the test's truth has, a site it
does not know with 404. Built on the sandbox's one HTTP server base (sandbox/httpserver.py: loopback only,
TCP_NODELAY, request log, scripted faults).
"""

from collections.abc import Mapping
from datetime import date

from sandbox.httpserver import Request, Response, SandboxServer, json_response


class ToyServer(SandboxServer):
    """Serves `visits[(site, day)]`, the truth the test states."""

    name = "toy"

    def __init__(self, visits: Mapping[tuple[str, date], int]) -> None:
        super().__init__()
        self.visits = dict(visits)

    def env(self) -> dict[str, str]:
        return {"MKPI_TOY_URL": self.url}

    def handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if request.method != "GET" or len(parts) != 4 or parts[:2] != ["v1", "sites"] or parts[3] != "visits":
            return self.error_response(404, f"No route for {request.method} {request.path}")
        site = parts[2]
        if site not in {s for s, _ in self.visits}:
            return self.error_response(404, f"unknown site {site}")
        start, end = (date.fromisoformat(request.query[k][0]) for k in ("start", "end"))
        rows = [{"date": day.isoformat(), "visits": n} for (s, day), n in sorted(self.visits.items())
                if s == site and start <= day <= end]
        return json_response(200, {"site": site, "rows": rows})
