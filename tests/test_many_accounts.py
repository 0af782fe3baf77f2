"""Issue #10, many accounts: 50 GA4 properties, 20 Search Console sites, 20 Google Ads customers in four
currencies, 10 Matomo sites and one HubSpot portal, read in parallel within each platform's limit, with one bad
account isolated and named.

Expected values come from the sandbox world (``World(profile="many")``) and from config/mkpi.yaml's FX rates read
here as plain YAML, never from the pipeline's tables or code. Parallelism is shown on the wire: each HTTP server's
handler counts the requests it is serving at once (and holds each for a few milliseconds so overlaps are certain).
"""

import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from connectors.batches import Window
from connectors.errors import ConfigError, RetriesExhausted, SourceError
from connectors.ga4 import TRAFFIC, Ga4Connector
from connectors.http import RetryPolicy
from connectors.parallel import AccountLog, fetch_accounts
from connectors.settings import GA4Settings, load_settings
from pipelines.definitions import defs
from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG
from pipelines.demo import working_file_held
from pipelines.lib.accounts import account_outcome, settle_accounts
from pipelines.lib.partitions import STEP_RERUNS
from sandbox.__main__ import main as sandbox_main
from sandbox.httpserver import Request, Response
from sandbox.launcher import Sandbox
from sandbox.world import World
from tests.ecb import eur_per
from tests.isolation import without_publish
from tests.sandboxes import start_servers

TODAY = date(2026, 3, 31)
# two days old enough for Search Console's final data (it lags three days)
START, END = date(2026, 3, 19), date(2026, 3, 20)
DAYS = [START, END]
HOLD_SECONDS = 0.02


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=5, today=TODAY, profile="many")


@pytest.fixture
def sandbox(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with start_servers(world) as running:  # the daily run reads no HubSpot table: its portal is not built
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        yield running


class InFlight:
    """Wraps a sandbox HTTP server's handler: counts concurrent requests, remembers the peak."""

    def __init__(self, server: object) -> None:
        self.peak = 0
        self._now = 0
        self._lock = threading.Lock()
        self._handle: Callable[[Request], Response] = server.handle  # type: ignore[attr-defined]
        server.handle = self  # type: ignore[attr-defined]

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self._now += 1
            self.peak = max(self.peak, self._now)
        try:
            time.sleep(HOLD_SECONDS)
            return self._handle(request)
        finally:
            with self._lock:
                self._now -= 1


def run_daily(**kwargs: object) -> dg.ExecuteInProcessResult:
    """The daily refresh over START..END, the working file held open meanwhile as `make demo` holds it
    (pipelines/demo.py): each step's connection is handed the open database instead of reading the catalogue and
    checkpointing at close; what the steps read and write is the same."""
    with working_file_held():
        return defs.resolve_job_def("daily_refresh_job").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            tags={RANGE_START_TAG: START.isoformat(), RANGE_END_TAG: END.isoformat()},
            raise_on_error=False,
            **kwargs,
        )


def materialisation_metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, object]:
    for event in result.all_events:
        if event.is_step_materialization:
            materialization = event.event_specific_data.materialization
            if materialization.asset_key.to_user_string() == key:
                return {k: v.value for k, v in materialization.metadata.items()}
    raise AssertionError(f"no materialisation of {key}")


def test_the_many_profile_serves_every_account_and_the_env_lists_them(world: World, sandbox: Sandbox) -> None:
    env = sandbox.env
    assert len(env["MKPI_GA4_PROPERTY_IDS"].split(",")) == 50 == len(world.ga4_properties)
    assert len(env["MKPI_SEARCH_CONSOLE_SITES"].split(",")) == 20 == len(world.gsc_sites)
    assert len(env["MKPI_GOOGLE_ADS_CUSTOMER_IDS"].split(",")) == 20 == len(world.ads_customers())
    assert env["MKPI_MATOMO_SITE_IDS"].split(",") == [str(i) for i in range(1, 11)]
    assert {c.currency_code for c in world.ads_customers().values()} == {"EUR", "USD", "GBP", "CHF"}
    # every account has data of its own, not the default account's copied
    day = START
    assert len({sum(f.metrics["sessions"] for f in world.ga4_facts(p, day)) for p in world.ga4_properties}) > 40
    assert len({world.gsc_day(s, day).clicks for s in world.gsc_sites}) > 5
    assert len({world.matomo_day(s, day).summary.nb_visits for s in world.matomo_sites}) == 10
    # the default world is still the small shop: a second (small) GA4 property and the US Ads test market
    default = World(seed=5, today=TODAY)
    assert (len(default.ga4_properties), len(default.gsc_sites), len(default.ads_customers()),
            len(default.matomo_sites)) == (2, 1, 2, 1)


def test_python_m_sandbox_profile_many_hands_every_account_to_the_command() -> None:
    def counts(accounts: dict[str, int]) -> str:  # n accounts are separated by n - 1 commas
        return " && ".join(f'test "$(printf %s "${var}" | tr -cd , | wc -c)" -eq {n - 1}'
                           for var, n in accounts.items())

    expected = {"MKPI_GA4_PROPERTY_IDS": 50, "MKPI_SEARCH_CONSOLE_SITES": 20, "MKPI_GOOGLE_ADS_CUSTOMER_IDS": 20,
                "MKPI_MATOMO_SITE_IDS": 10}
    argv = ["--profile", "many", "--today", TODAY.isoformat(), "--exec", "sh", "-c"]
    assert sandbox_main([*argv, counts(expected)]) == 0  # the command's exit status: 1 if a count differs


def test_daily_run_loads_every_account_in_parallel_within_each_platforms_limit(world: World, sandbox: Sandbox
                                                                                ) -> None:
    gauges = {name: InFlight(sandbox.server(name)) for name in ("ga4", "gsc", "matomo")}
    # every report source and KPI table; the publish's two files are left out: what is checked is the working file
    result = run_daily(asset_selection=without_publish(defs.resolve_job_def("daily_refresh_job")))
    assert result.success

    db = load_settings().duckdb_path
    with duckdb.connect(db, read_only=True) as conn:
        sessions = dict(conn.execute("SELECT property_id, sum(sessions) FROM ga4.traffic_by_channel "
                                     "GROUP BY ALL").fetchall())
        orders = dict(conn.execute("SELECT property_id, sum(ecommerce_purchases) FROM ga4.ecommerce_by_date "
                                   "GROUP BY ALL").fetchall())
        clicks = {(s, d): c for s, d, c in conn.execute(
            "SELECT site_url, date, clicks FROM search_console.site_totals WHERE search_type = 'web'").fetchall()}
        visits = {(s, d): v for s, d, v in conn.execute(
            "SELECT site_id, date, nb_visits FROM matomo.visits_summary").fetchall()}
        ads = {c: (n, cost, currencies) for c, n, cost, currencies in conn.execute(
            "SELECT customer_id, count(*), sum(cost_micros), list(DISTINCT currency_code) "
            "FROM google_ads.campaign_daily GROUP BY ALL").fetchall()}
        ad_cost = dict(conn.execute("SELECT date, sum(numerator) FROM kpi.kpi_daily WHERE kpi = 'ad_cost' "
                                    "AND source = 'google_ads' AND channel <> 'all' GROUP BY ALL").fetchall())

    assert sessions == {p: sum(f.metrics["sessions"] for d in DAYS for f in world.ga4_facts(p, d))
                        for p in world.ga4_properties}
    assert orders == {p: sum(f.metrics["ecommercePurchases"] for d in DAYS for f in world.ga4_facts(p, d))
                      for p in world.ga4_properties}
    assert clicks == {(s, d): world.gsc_day(s, d).clicks for s in world.gsc_sites for d in DAYS}
    assert visits == {(s, d): world.matomo_day(s, d).summary.nb_visits for s in world.matomo_sites for d in DAYS}
    customers = world.ads_customers()
    truth = {c: [r for d in DAYS for r in world.ads_campaign_day(c, d) if r.impressions] for c in customers}
    assert ads == {c: (len(rows), sum(r.cost_micros for r in rows), [customers[c].currency_code])
                   for c, rows in truth.items()}
    # every currency converted into EUR at the ECB rate of its day, none left out
    assert ad_cost == {d: pytest.approx(sum(r.cost_micros / 1e6 * eur_per(customers[c].currency_code, d)
                                            for c, rows in truth.items() for r in rows if r.day == d))
                       for d in DAYS}

    # parallel on the wire, never above each platform's configured limit
    settings = load_settings()
    assert 1 < gauges["ga4"].peak <= settings.ga4.parallel_accounts
    assert 1 < gauges["gsc"].peak <= settings.search_console.parallel_accounts
    assert 1 < gauges["matomo"].peak <= settings.matomo.parallel_accounts
    ads_meta = materialisation_metadata(result, "google_ads/campaign_daily")
    assert 1 < ads_meta["max_parallel_accounts"] <= settings.google_ads.parallel_accounts
    assert ads_meta["rows_by_account"] == {c: len(rows) for c, rows in truth.items()}
    assert ads_meta["failed_accounts"] == {} and ads_meta["accounts"] == 20
    assert list(materialisation_metadata(result, "ga4/ecommerce_by_date")["rows_by_account"]) == list(
        world.ga4_properties)  # in configured order


def test_one_forbidden_property_fails_the_run_by_name_and_the_other_49_load_and_reach_the_kpis(
        world: World, sandbox: Sandbox) -> None:
    bad = "200000017"
    sandbox.server("ga4").forbidden_properties = frozenset({bad})  # type: ignore[attr-defined]
    web_daily = dg.AssetKey(["kpi", "web_daily"])
    result = run_daily(asset_selection=[dg.AssetKey(["ga4", "traffic_by_channel"]), web_daily])
    assert not result.success
    # the raw step succeeded with the 49 good properties; the run fails on the check that names the bad one
    failures = {e.step_key: e.step_failure_data for e in result.all_events if e.is_step_failure}
    assert list(failures) == ["ga4__traffic_by_channel_every_account_loaded"]
    message = failures["ga4__traffic_by_channel_every_account_loaded"].error.message
    assert f"ga4: 1 account(s) failed ({bad})" in message
    assert f"ga4 account {bad}" in message and "403" in message
    assert f"mkpi backfill --source ga4 --start {START} --end {END}" in message
    evaluation = next(e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
                      and e.event_specific_data.check_name == "every_account_loaded")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert list(evaluation.metadata["failed_accounts"].value) == [bad]

    metadata = materialisation_metadata(result, "ga4/traffic_by_channel")
    assert list(metadata["failed_accounts"]) == [bad]
    good = [p for p in world.ga4_properties if p != bad]
    cells = {p: len({(d, f.dims["sessionDefaultChannelGroup"]) for d in DAYS for f in world.ga4_facts(p, d)})
             for p in good}
    assert metadata["rows_by_account"] == cells
    with duckdb.connect(load_settings().duckdb_path, read_only=True) as conn:
        loaded = dict(conn.execute("SELECT property_id, count(*) FROM ga4.traffic_by_channel GROUP BY ALL").fetchall())
        kpis = {d: (s, e, r) for d, s, e, r in conn.execute(
            "SELECT date, sum(sessions), sum(engaged_sessions), sum(engaged_sessions) / sum(sessions) "
            "FROM kpi.web_daily WHERE source = 'ga4' GROUP BY ALL").fetchall()}
    assert loaded == cells  # 49 properties loaded, nothing for the bad one
    # ... and web_daily was rebuilt in the same run for them: the world's sums over the 49 good properties
    for day in DAYS:
        facts = [f for p in good for f in world.ga4_facts(p, day)]
        sessions = sum(f.metrics["sessions"] for f in facts)
        engaged = sum(f.metrics["engagedSessions"] for f in facts)
        assert kpis[day] == (sessions, engaged, pytest.approx(engaged / sessions))


def test_every_account_failing_fails_the_step_itself(world: World, sandbox: Sandbox) -> None:
    """With nothing loaded there is nothing to isolate: the raw step fails and the KPI step does not run."""
    sandbox.server("ga4").forbidden_properties = frozenset(world.ga4_properties)  # type: ignore[attr-defined]
    result = run_daily(asset_selection=[dg.AssetKey(["ga4", "traffic_by_channel"]), dg.AssetKey(["kpi", "web_daily"])])
    failures = {e.step_key: e.step_failure_data for e in result.all_events if e.is_step_failure}
    assert list(failures) == ["ga4__traffic_by_channel"]
    assert "ga4: 50 of 50 accounts failed" in failures["ga4__traffic_by_channel"].error.message
    assert not any(e.is_step_materialization for e in result.all_events)


class _Attempt:
    """The two things settle_accounts reads from Dagster's context: the attempt number and the logger."""

    def __init__(self, retry_number: int) -> None:
        self.retry_number = retry_number
        self.errors: list[str] = []
        self.log = self

    def error(self, message: str) -> None:
        self.errors.append(message)


def _log(failures: dict[str, BaseException], accounts: tuple[str, ...] = ("1", "2", "3")) -> AccountLog:
    log = AccountLog("ga4")
    log.expect(accounts)
    for account, error in failures.items():
        log.fail(account, error)
    return log


def test_settle_accounts_reruns_transient_partial_failures_until_the_last_attempt_then_lets_the_step_succeed(
        ) -> None:
    transient = {"2": RetriesExhausted("ga4", "ga4 account 2", "429 after 5 attempts")}
    for attempt in range(STEP_RERUNS):  # Dagster re-runs the step: the account may be back
        with pytest.raises(RetriesExhausted):
            settle_accounts(_Attempt(attempt), _log(transient))  # type: ignore[arg-type]
    last = _Attempt(STEP_RERUNS)
    settle_accounts(last, _log(transient))  # type: ignore[arg-type]  # the good accounts' step succeeds
    assert len(last.errors) == 1 and "ga4: 1 of 3 accounts failed (2); the other 2 were loaded" in last.errors[0]
    # a permission is not transient: no re-run, the step succeeds at once and the check names it
    first = _Attempt(0)
    settle_accounts(first, _log({"3": SourceError("ga4", "3", "403 permission denied")}))  # type: ignore[arg-type]
    assert "(3)" in first.errors[0]
    # nothing loaded: the step fails, re-run while transient, at once otherwise
    with pytest.raises(RetriesExhausted):
        settle_accounts(_Attempt(STEP_RERUNS), _log(transient, accounts=("2",)))  # type: ignore[arg-type]
    with pytest.raises(dg.Failure, match=r"1 of 1 accounts failed \(3\)"):
        settle_accounts(_Attempt(0), _log({"3": SourceError("ga4", "3", "403")}, accounts=("3",)))  # type: ignore[arg-type]
    settle_accounts(_Attempt(0), _log({}))  # type: ignore[arg-type]  # all good: nothing to say


def test_the_check_launched_on_its_own_judges_the_latest_materialisation() -> None:
    instance = dg.DagsterInstance.ephemeral()
    key = dg.AssetKey(["ga4", "traffic_by_channel"])
    assert account_outcome(instance, "a-run-without-it", key) is None  # never materialised
    instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata={
        "failed_accounts": dg.MetadataValue.json({"7": "ga4 account 7: 403"}), "window_start": "2026-03-19",
        "window_end": "2026-03-20"}))
    outcome = account_outcome(instance, "a-run-without-it", key)
    assert outcome is not None and outcome.failed == {"7": "ga4 account 7: 403"}
    assert outcome.rerun_hint("ga4") == ("Once fixed, reload the window: mkpi backfill --source ga4 --start "
                                         "2026-03-19 --end 2026-03-20 (or re-execute this run).")


def test_connector_isolates_a_forbidden_and_a_failing_property_and_keeps_configured_order(
        world: World, sandbox: Sandbox) -> None:
    ids = list(world.ga4_properties)[:6]
    forbidden, failing, slow = ids[2], ids[4], ids[0]
    server = sandbox.server("ga4")
    server.forbidden_properties = frozenset({forbidden})  # type: ignore[attr-defined]
    handle = server.handle

    def faulty(request: Request) -> Response:
        if f"properties/{failing}:" in request.path:
            return server.error_response(500, "Internal error encountered.")
        if f"properties/{slow}:" in request.path:
            time.sleep(0.3)  # the first account finishes last; it must still come first
        return handle(request)

    server.handle = faulty  # type: ignore[method-assign]
    settings = GA4Settings(property_ids=tuple(ids), endpoint=sandbox.env["MKPI_GA4_ENDPOINT"], parallel_accounts=3)
    connector = Ga4Connector(settings, policy=RetryPolicy(max_attempts=2, base_delay=0.001), sleep=lambda s: None)
    log = AccountLog("ga4")
    batches = list(connector.fetch(TRAFFIC, Window(START, END), accounts=log))
    assert [b.scope["property_id"] for b in batches] == [p for p in ids if p not in (forbidden, failing)]
    assert set(log.failures) == {forbidden, failing}
    assert isinstance(log.failures[failing], RetriesExhausted)
    assert not isinstance(log.failures[forbidden], RetriesExhausted) and "403" in str(log.failures[forbidden])
    error = log.error()
    assert error is not None and not error.retryable  # a permission needs a person: no automatic re-run
    assert f"2 of 6 accounts failed ({forbidden}, {failing})" in str(error)
    assert 1 < log.max_in_flight <= 3
    # without a log, the first failure in account order is raised, as a sequential loop would
    with pytest.raises(SourceError, match=f"ga4 account {forbidden}"):
        list(Ga4Connector(settings, policy=RetryPolicy(max_attempts=2, base_delay=0.001),
                          sleep=lambda s: None).fetch(TRAFFIC, Window(START, END)))


def test_fetch_accounts_bounds_parallelism_and_hands_results_on_in_account_order() -> None:
    accounts = [f"a{i}" for i in range(12)]
    lock, now, peak = threading.Lock(), [0], [0]

    def fetch_one(account: str) -> list[str]:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.003 * ((12 - int(account[1:])) % 5))  # later accounts often finish first
        with lock:
            now[0] -= 1
        return [account]  # stand-ins for batches: fetch_accounts only counts rows when given a log

    out = list(fetch_accounts(accounts, fetch_one, max_workers=4, source="test"))  # type: ignore[arg-type]
    assert out == accounts and 1 < peak[0] <= 4

    def broken(account: str) -> list[str]:
        raise ConfigError("no credentials")

    with pytest.raises(ConfigError):  # a configuration error is nobody's account: never isolated
        list(fetch_accounts(accounts, broken, max_workers=2, source="test", log=AccountLog("test")))
    with pytest.raises(ValueError):
        list(fetch_accounts(accounts, fetch_one, max_workers=0, source="test"))  # type: ignore[arg-type]


def test_parallel_accounts_is_read_from_config_and_must_be_positive(tmp_path: Path) -> None:
    config = tmp_path / "mkpi.yaml"
    config.write_text("ga4: {parallel_accounts: 3}\nmatomo: {parallel_accounts: 1}\n")
    settings = load_settings(config, environ={})
    assert (settings.ga4.parallel_accounts, settings.matomo.parallel_accounts) == (3, 1)
    assert (settings.search_console.parallel_accounts, settings.google_ads.parallel_accounts) == (4, 4)
    config.write_text("google_ads: {parallel_accounts: -2}\n")
    with pytest.raises(ConfigError, match="google_ads.parallel_accounts"):
        load_settings(config, environ={})
