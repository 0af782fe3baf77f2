"""Secrets canary (issue #8): the sandbox's tokens are random per start, so they are canaries. Through full
runs at DEBUG level, a failing run with a wrong token, and the published files, no token may appear in
stdout/stderr, log records, Dagster events, run config or tags, or the DuckDB files."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG
from pipelines.demo import working_file_held
from sandbox.hubspot_server import HubSpotServer
from sandbox.world import World
from tests.isolation import sandbox_with_a_month_of_hubspot

SECRET_VARIABLES = ("MKPI_MATOMO_TOKEN", "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN", "MKPI_HUBSPOT_TOKEN",
                    "MKPI_META_ACCESS_TOKEN", "MKPI_LINKEDIN_ACCESS_TOKEN")


@contextmanager
def servers_with_a_month_of_hubspot(world: World, monkeypatch: pytest.MonkeyPatch
                                    ) -> Iterator[tuple[dict[str, str], Any, HubSpotServer]]:
    """The launcher's sandbox servers, HubSpot's with a portal a month deep (`sandbox_with_a_month_of_hubspot`), their
    environment set; yields it, the servers and HubSpot's."""
    with sandbox_with_a_month_of_hubspot(world) as running:
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        yield running.env, running, running.server("hubspot")


@pytest.mark.battery("Secrets")
def test_no_secret_leaks_anywhere(tmp_path, monkeypatch, caplog, capfd):
    work, analyst = tmp_path / "work.duckdb", tmp_path / "kpis.duckdb"
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(work))
    monkeypatch.setenv("MKPI_ANALYST_DB", str(analyst))
    caplog.set_level(logging.DEBUG)
    wrong = "pat-sandbox-canary-wrong-token-7f3a9c"
    texts: list[str] = []
    world = World(seed=2, today=date(2026, 3, 31))
    # HubSpot's portal a month deep (~900 contacts) instead of the launcher's 400 days (~20,000, a paced full list of
    # ~40 s): the token travels the same requests, pages and errors; fewer pages carry it
    with servers_with_a_month_of_hubspot(world, monkeypatch) as (env, _, _):
        canaries = [env[v] for v in SECRET_VARIABLES] + [wrong]
        # the working file held open during the runs, as `make demo` holds it (pipelines/demo.py): the steps'
        # connections are handed the open database; every file is searched after it is closed
        with working_file_held():
            results = [
                defs.resolve_job_def("hubspot_refresh_job").execute_in_process(
                    instance=dg.DagsterInstance.ephemeral(), raise_on_error=False),
                defs.resolve_job_def("daily_refresh_job").execute_in_process(
                    instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                    tags={RANGE_START_TAG: "2026-03-27", RANGE_END_TAG: "2026-03-30"}),
            ]
            monkeypatch.setenv("MKPI_HUBSPOT_TOKEN", wrong)  # a failing run echoes errors: still no token
            results.append(defs.resolve_job_def("hubspot_refresh_job").execute_in_process(
                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False))
    assert results[0].success and results[1].success and not results[2].success
    for result in results:
        texts.append(repr(result.dagster_run.run_config))
        texts.append(repr(result.dagster_run.tags))
        for event in result.all_events:
            texts.append(event.message or "")
            texts.append(repr(event.event_specific_data))
    out, err = capfd.readouterr()
    texts += [out, err]
    texts += [record.getMessage() for record in caplog.records]
    blobs = [work.read_bytes(), analyst.read_bytes()]
    for canary in canaries:
        assert all(canary not in text for text in texts), "a secret reached logs, events or run config"
        assert all(canary.encode() not in blob for blob in blobs), "a secret reached a DuckDB file"
    assert any("401" in t for t in texts)  # the failure itself was reported


# ---- issue #19 item 9: a server that echoes the token ------------------------------------------------------------

ECHO_TOKEN_MATOMO = "0123456789abcdef0123456789abcdef"
ECHO_TOKEN_HUBSPOT = "pat-na1-echoed-canary-0123456789abcdef"
ECHO_TOKEN_LINKEDIN = "AQVechoedlinkedincanary0123456789"
ECHO_TOKEN_META = "EAABechoedcanary0123456789abcdef"


def _chain(error: BaseException) -> list[BaseException]:
    """The error and every exception behind it (__cause__ and __context__), as Dagster and tracebacks walk them."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        exc = todo.pop()
        if exc is None or any(exc is s for s in seen):
            continue
        seen.append(exc)
        todo += [exc.__cause__, exc.__context__]
    return seen


def _everything_said(error: BaseException, records: list[logging.LogRecord]) -> str:
    """What could reach a person or a store: the traceback `mkpi --debug` prints, every chained exception's str,
    repr, args and attributes (Dagster pickles exceptions across processes), and every captured log line."""
    import pickle
    import traceback

    parts = ["".join(traceback.format_exception(error))]
    for exc in _chain(error):
        parts += [str(exc), repr(exc), repr(exc.args), repr(getattr(exc, "__dict__", {}))]
        try:
            parts.append(repr(pickle.loads(pickle.dumps(exc))))
        except Exception:  # noqa: BLE001 - not every client's exception pickles; its text is checked above
            pass
    for record in records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


@pytest.mark.battery("Secrets")
@pytest.mark.parametrize("where", ["envelope", "bulk element", "HTTP 401"])
def test_matomo_echoing_its_token_leaks_it_nowhere(caplog, where):
    """Matomo's error message (an HTTP 200 {"result": "error"} envelope, one element of a bulk answer, a 401 with the
    envelope) quoting the token: the run fails with Matomo's words, the token starred."""
    from connectors.batches import Window
    from connectors.errors import SourceError
    from connectors.http import RetryPolicy
    from connectors.matomo import MatomoConnector
    from connectors.settings import MatomoSettings, Secret
    from sandbox.matomo_server import MatomoServer

    caplog.set_level(logging.DEBUG)
    message = f"Unable to authenticate with the provided token_auth={ECHO_TOKEN_MATOMO} for site 1"
    envelope = {"result": "error", "message": message}
    with MatomoServer(World(seed=2, today=date(2026, 3, 31)), token=ECHO_TOKEN_MATOMO) as server:
        if where == "bulk element":
            server.add_fault("status", 200, [{"idsite": 1}] + [envelope] * 6)
        else:
            server.add_fault("status", 401 if where == "HTTP 401" else 200, envelope)
        connector = MatomoConnector(MatomoSettings(url=server.url, site_ids=("1",), token=Secret(ECHO_TOKEN_MATOMO),
                                                   timeout_seconds=5), policy=RetryPolicy(max_attempts=2),
                                    sleep=lambda _s: None)
        with pytest.raises(SourceError) as caught:
            list(connector.fetch(Window(date(2026, 3, 1), date(2026, 3, 2))))
    said = _everything_said(caught.value, caplog.records)
    assert ECHO_TOKEN_MATOMO not in said
    assert "Unable to authenticate with the provided token_auth=*** for site 1" in str(caught.value)


@pytest.mark.battery("Secrets")
def test_hubspot_401_body_echoing_the_token_leaks_it_nowhere(caplog):
    """HubSpot's 401 body quoting the token travels in the ApiException the SourceError is raised from (its str shows
    the whole body and headers): the chain, the logs and the traceback carry it starred."""
    from connectors.batches import Window
    from connectors.errors import SourceError
    from connectors.http import RetryPolicy
    from connectors.hubspot import HubSpotConnector
    from connectors.settings import HubSpotSettings, Secret
    from sandbox.hubspot_server import HubSpotServer

    caplog.set_level(logging.DEBUG)
    body = {"status": "error", "message": f"The access token {ECHO_TOKEN_HUBSPOT} is expired or invalid",
            "correlationId": "7c9e5e2a-0000-4000-8000-000000000001", "category": "INVALID_AUTHENTICATION"}
    # a portal a month deep: its records are never served (the first request is refused), building 400 days' costs
    # ~1.3 s of CPU
    with HubSpotServer(World(seed=2, today=date(2026, 3, 31)), token=ECHO_TOKEN_HUBSPOT, history_days=30,
                       bulk_import_size=0) as server:
        server.add_fault("status", 401, body, {"WWW-Authenticate": f'Bearer error="{ECHO_TOKEN_HUBSPOT}"'})
        connector = HubSpotConnector(HubSpotSettings(endpoint=server.url, token=Secret(ECHO_TOKEN_HUBSPOT),
                                                     timeout_seconds=5), policy=RetryPolicy(max_attempts=2),
                                     sleep=lambda _s: None)
        with pytest.raises(SourceError) as caught:
            list(connector.fetch_owners(Window(date(2026, 3, 31), date(2026, 3, 31))))
    said = _everything_said(caught.value, caplog.records)
    assert ECHO_TOKEN_HUBSPOT not in said
    assert "401 The access token *** is expired or invalid" in str(caught.value)
    assert any(type(exc).__name__ in ("UnauthorizedException", "ApiException", "RedactedError")
               for exc in _chain(caught.value))  # the cause is kept, scrubbed, for whoever debugs it


@pytest.mark.battery("Secrets")
@pytest.mark.parametrize("status", [400, 503])
def test_graph_api_echoing_the_token_leaks_it_nowhere(caplog, status):
    """Graph API's error body quoting the token (a refusal, fatal; a transient error, retried then exhausted): the
    run fails with Meta's words and fbtrace_id, the token starred in the error, its chain and the log lines; and
    the token never travelled in a query string."""
    from connectors.batches import Window
    from connectors.errors import SourceError
    from connectors.facebook import FacebookConnector
    from connectors.http import RetryPolicy
    from connectors.settings import FacebookSettings, MetaSettings, Secret
    from sandbox.meta_server import MetaServer
    from sandbox.world import FACEBOOK_PAGE_ID

    caplog.set_level(logging.DEBUG)
    body = {"error": {"message": f"Error validating access token {ECHO_TOKEN_META}", "type": "OAuthException",
                      "code": 190 if status == 400 else 2, "fbtrace_id": "AcanaryTrace"}}
    with MetaServer(World(seed=2, today=date(2026, 3, 31)), token=ECHO_TOKEN_META) as server:
        for _ in range(2):
            server.add_fault("status", status, body)
        connector = FacebookConnector(
            MetaSettings(endpoint=server.url, access_token=Secret(ECHO_TOKEN_META), timeout_seconds=5),
            FacebookSettings(page_ids=(FACEBOOK_PAGE_ID,)), policy=RetryPolicy(max_attempts=2), sleep=lambda _s: None)
        with pytest.raises(SourceError) as caught:
            list(connector.fetch_all(Window(date(2026, 3, 1), date(2026, 3, 2))))
        assert server.tokens_in_query == 0
    said = _everything_said(caught.value, caplog.records)
    assert ECHO_TOKEN_META not in said
    assert "Error validating access token ***" in str(caught.value) and "AcanaryTrace" in str(caught.value)

@pytest.mark.battery("Secrets")
@pytest.mark.parametrize("status", [401, 503])
def test_linkedin_echoing_the_token_leaks_it_nowhere(caplog, status):
    """LinkedIn's error body (status, serviceErrorCode, code, message) quoting the token (a refusal, fatal; a 503,
    retried then exhausted): the run fails with LinkedIn's words, the token starred in the error, its chain and the
    log lines; the token travels in the Authorization header only, never in a URL."""
    from connectors.batches import Window
    from connectors.errors import SourceError
    from connectors.http import RetryPolicy
    from connectors.linkedin import ACCOUNT_DAILY, LinkedInConnector
    from connectors.settings import LinkedInSettings, Secret
    from sandbox.linkedin_server import LinkedInServer
    from sandbox.world import LINKEDIN_ORGANIZATION_IDS

    caplog.set_level(logging.DEBUG)
    body = {"status": status, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN",
            "message": f"Invalid access token {ECHO_TOKEN_LINKEDIN}"}
    with LinkedInServer(World(seed=2, today=date(2026, 3, 31)), token=ECHO_TOKEN_LINKEDIN) as server:
        for _ in range(2):
            server.add_fault("status", status, body)
        settings = LinkedInSettings(organization_ids=LINKEDIN_ORGANIZATION_IDS[:1], endpoint=server.url,
                                    access_token=Secret(ECHO_TOKEN_LINKEDIN), timeout_seconds=5)
        connector = LinkedInConnector(settings, policy=RetryPolicy(max_attempts=2), sleep=lambda _s: None)
        with pytest.raises(SourceError) as caught:
            list(connector.fetch(ACCOUNT_DAILY, Window(date(2026, 3, 1), date(2026, 3, 2))))
        assert all(ECHO_TOKEN_LINKEDIN not in r.path + str(r.query) for r in server.requests)
    said = _everything_said(caught.value, caplog.records)
    assert ECHO_TOKEN_LINKEDIN not in said
    assert "Invalid access token ***" in str(caught.value) and "INVALID_ACCESS_TOKEN" in str(caught.value)

@pytest.mark.battery("Secrets")
def test_a_retried_echo_is_starred_in_the_retry_log_lines(caplog):
    """A 503 whose body quotes the token is retried: the warning line of each retry shows the body, starred."""
    from connectors.http import RetryPolicy
    from connectors.matomo import MatomoConnector
    from connectors.settings import MatomoSettings, Secret
    from sandbox.matomo_server import MatomoServer

    caplog.set_level(logging.DEBUG)
    with MatomoServer(World(seed=2, today=date(2026, 3, 31)), token=ECHO_TOKEN_MATOMO) as server:
        server.add_fault("status", 503, {"result": "error", "message": f"busy; token_auth={ECHO_TOKEN_MATOMO}"})
        connector = MatomoConnector(MatomoSettings(url=server.url, site_ids=("1",), token=Secret(ECHO_TOKEN_MATOMO),
                                                   timeout_seconds=5), policy=RetryPolicy(max_attempts=3),
                                    sleep=lambda _s: None)
        connector.call("API.getMatomoVersion", "1")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("mkpi")]
    assert any("token_auth=***" in line for line in lines), lines
    assert all(ECHO_TOKEN_MATOMO not in line for line in lines)


@pytest.mark.battery("Secrets")
def test_echoed_tokens_reach_no_dagster_storage_log_or_duckdb_file(tmp_path, monkeypatch, capfd):
    """Runs on a Dagster instance kept on disk (the repository's dagster.yaml: `mkpi` logs captured), as `mkpi
    backfill` runs them, while Matomo (an error envelope) and HubSpot (a 401 body) echo their tokens: the runs fail
    naming the platform's words, and no byte of either token is in any file under DAGSTER_HOME (run and event
    storage, step logs), the DuckDB files, or the process's output."""
    import shutil

    from connectors.matomo import STREAMS as MATOMO_STREAMS
    from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG

    home, work, analyst = tmp_path / "dagster_home", tmp_path / "work.duckdb", tmp_path / "kpis.duckdb"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(work))
    monkeypatch.setenv("MKPI_ANALYST_DB", str(analyst))
    world = World(seed=2, today=date(2026, 3, 31))
    # HubSpot's records are never served here (the first request is refused with the echoing 401)
    with servers_with_a_month_of_hubspot(world, monkeypatch) as (env, running, hubspot):
        matomo_token, hubspot_token = env["MKPI_MATOMO_TOKEN"], env["MKPI_HUBSPOT_TOKEN"]
        matomo = running.server("matomo")
        for _ in range(3):  # every attempt of the run's bulk request, and the step's re-runs
            matomo.add_fault("status", 200, {"result": "error", "message": f"token_auth {matomo_token} is not valid"})
        hubspot.add_fault("status", 401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                                          "message": f"Authentication credentials {hubspot_token} are not valid"})
        with dg.DagsterInstance.get() as instance:
            results = [
                defs.resolve_job_def("daily_refresh_job").execute_in_process(
                    instance=instance, raise_on_error=False,
                    asset_selection=[dg.AssetKey(s.table.split(".")) for s in MATOMO_STREAMS],
                    tags={RANGE_START_TAG: "2026-03-29", RANGE_END_TAG: "2026-03-30"}),
                defs.resolve_job_def("hubspot_refresh_job").execute_in_process(
                    instance=instance, raise_on_error=False,
                    asset_selection=[dg.AssetKey(["hubspot", table])
                                     for table in ("owners", "deal_stages", "account_details")]),
            ]
    assert not any(result.success for result in results)
    failures = [event.event_specific_data.error.to_string() for result in results for event in result.all_events
                if event.is_step_failure]
    assert any("token_auth *** is not valid" in text for text in failures), failures
    assert any("Authentication credentials *** are not valid" in text for text in failures), failures
    stored = [path for path in home.rglob("*") if path.is_file()]
    assert any(path.suffix == ".db" for path in stored)  # the run and event storage are there to search
    out, err = capfd.readouterr()
    for token in (matomo_token, hubspot_token):
        assert token.encode() not in (out + err).encode()
        for path in [*stored, work, analyst]:
            if path.exists():
                assert token.encode() not in path.read_bytes(), f"{token[:4]}... in {path}"
