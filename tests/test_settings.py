"""Settings: environment overrides the YAML file; bad values fail with a clear message."""

from datetime import date

import pytest

from connectors import registry
from connectors.errors import ConfigError
from connectors.settings import Secret, load_settings


def write(tmp_path, text: str):
    path = tmp_path / "mkpi.yaml"
    path.write_text(text)
    return path


def test_file_values_then_environment_overrides(tmp_path):
    path = write(tmp_path, "reporting_timezone: America/New_York\nga4:\n  property_ids: [111, 222]\n  reread_days: 5\n")
    s = load_settings(path, environ={})
    assert s.reporting_timezone == "America/New_York"
    assert s.ga4.property_ids == ("111", "222") and s.ga4.reread_days == 5
    s = load_settings(path, environ={"MKPI_GA4_PROPERTY_IDS": " 333, 444 ,", "MKPI_GA4_ENDPOINT": "http://127.0.0.1:9",
                                     "MKPI_DUCKDB_PATH": "/tmp/x.duckdb"})
    assert s.ga4.property_ids == ("333", "444")
    assert s.ga4.endpoint == "http://127.0.0.1:9"
    assert s.duckdb_path == "/tmp/x.duckdb"


def test_defaults_from_the_committed_config():
    s = load_settings(environ={})
    assert s.duckdb_path == "data/marketing.duckdb"
    assert s.analyst_db == "data/kpis.duckdb"
    assert s.channels["ga4"]["Organic Search"] == "organic_search"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reporting_timezone: Mars/Olympus\n", "not a known IANA time zone"),
        ("start_date: yesterday\n", "not an ISO date"),
        ("ga4:\n  page_size: 300000\n", "between 1 and 250000"),
        ("- just a list\n", "mapping at the top level"),
    ],
)
def test_bad_values_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), environ={})


def test_hubspot_burst_limit_up_to_an_api_limit_increase(tmp_path):
    """HubSpot allows 250 requests per 10 s to an app with an API Limit Increase (usage guidelines, "Per 10 Seconds"):
    a portal that bought one may use it; one more is refused with the range."""
    assert load_settings(write(tmp_path, "hubspot:\n  requests_per_10s: 250\n"), environ={}).hubspot.requests_per_10s \
        == 250
    with pytest.raises(ConfigError, match="between 1 and 250"):
        load_settings(write(tmp_path, "hubspot:\n  requests_per_10s: 251\n"), environ={})


def test_missing_config_file_named_by_variable(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={"MKPI_CONFIG": str(tmp_path / "nope.yaml")})


@pytest.mark.parametrize("name", ["hubspot.duckdb", "GA4.duckdb", "kpi.db"])
def test_a_database_file_named_after_a_schema_is_refused(name, tmp_path):
    config = tmp_path / "mkpi.yaml"
    config.write_text("reporting_currency: EUR\n")
    with pytest.raises(ConfigError, match="may not be named") as caught:
        load_settings(environ={"MKPI_DUCKDB_PATH": str(tmp_path / name), "MKPI_CONFIG": str(config)})
    assert caught.value.key == "MKPI_DUCKDB_PATH"


# --- issue #18 part 3: every value is checked before anything runs -------------------------------------------------

ZERO_WAS_DEFAULTED = [  # each of these was `value or default`: 0 silently became the default
    "ga4.reread_days", "ga4.page_size", "ga4.timeout_seconds", "ga4.parallel_accounts",
    "search_console.reread_days", "search_console.row_limit", "search_console.queries_per_minute",
    "search_console.timeout_seconds", "search_console.parallel_accounts",
    "matomo.reread_days", "matomo.timeout_seconds", "matomo.requests_per_second", "matomo.parallel_accounts",
    "google_ads.reread_days", "google_ads.timeout_seconds", "google_ads.parallel_accounts",
    "hubspot.requests_per_10s", "hubspot.search_per_second", "hubspot.lookback_seconds", "hubspot.email_reread_days",
    "hubspot.timeout_seconds",
]


def refused(tmp_path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {})
    return caught.value


@pytest.mark.parametrize("key", ZERO_WAS_DEFAULTED)
def test_zero_is_refused_naming_the_file_the_key_and_the_range(tmp_path, key):
    section, name = key.split(".")
    error = refused(tmp_path, f"{section}:\n  {name}: 0\n")
    assert error.key == key
    message = str(error)
    assert message.startswith(f"config file {tmp_path / 'mkpi.yaml'}: {key} must be ")
    assert message.endswith(", got 0")
    assert "at least 1" in message or "above 0" in message or "between 1 and" in message


@pytest.mark.parametrize(("variable", "key"), [
    ("MKPI_GA4_REREAD_DAYS", "ga4.reread_days"), ("MKPI_SEARCH_CONSOLE_REREAD_DAYS", "search_console.reread_days"),
    ("MKPI_MATOMO_REREAD_DAYS", "matomo.reread_days"), ("MKPI_GOOGLE_ADS_REREAD_DAYS", "google_ads.reread_days"),
])
def test_an_environment_override_is_checked_like_the_file_and_names_the_variable(tmp_path, variable, key):
    for value in ("0", "-3", "three", "2.5"):
        error = refused(tmp_path, "{}\n", {variable: value})
        assert error.key == key
        assert str(error).startswith(f"environment variable {variable}: {key} must be a whole number of days, "
                                     "at least 1")
        assert repr(value) in str(error)
    assert getattr(load_settings(write(tmp_path, "{}\n"), environ={variable: "7"}), key.split(".")[0]).reread_days == 7


@pytest.mark.parametrize(("text", "key", "suggestion"), [
    ("reporting_timezon: Europe/Paris\n", "reporting_timezon", "reporting_timezone"),
    ("ga4:\n  reread_dayz: 4\n", "ga4.reread_dayz", "reread_days"),
    ("search_console:\n  row_limits: 10\n", "search_console.row_limits", "row_limit"),
    ("matomo:\n  site_id: [1]\n", "matomo.site_id", "site_ids"),
    ("google_ads:\n  customer_id: [1]\n", "google_ads.customer_id", "customer_ids"),
    ("hubspot:\n  lookback: 60\n", "hubspot.lookback", "lookback_seconds"),
    ("warehouse:\n  ducklake:\n    data_pth: x\n", "warehouse.ducklake.data_pth", "data_path"),
    ("min_denominators:\n  ratios: 5\n", "min_denominators.ratios", "ratio"),
])
def test_an_unknown_key_at_any_level_is_refused_with_the_closest_allowed_one(tmp_path, text, key, suggestion):
    error = refused(tmp_path, text)
    assert error.key == key
    message = str(error)
    assert f"unknown key {key} (did you mean {suggestion}?)" in message
    assert str(tmp_path / "mkpi.yaml") in message
    assert suggestion in message.split(" accepts ")[1]  # the allowed keys are listed


def test_an_unknown_key_without_a_close_one_lists_the_allowed_keys(tmp_path):
    error = refused(tmp_path, "min_denominators:\n  count: 3\n")
    assert error.key == "min_denominators.count"
    assert str(error).endswith("unknown key min_denominators.count; min_denominators accepts ratio, seconds, "
                               "currency, position, score")


@pytest.mark.parametrize(("key", "variable"), [
    ("matomo.token", "MKPI_MATOMO_TOKEN"), ("hubspot.token", "MKPI_HUBSPOT_TOKEN"),
    ("google_ads.developer_token", "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN"),
    ("google_ads.refresh_token", "MKPI_GOOGLE_ADS_REFRESH_TOKEN"),
    ("warehouse.ducklake.catalog", "MKPI_DUCKLAKE_CATALOG"),
])
def test_a_secret_written_in_the_file_is_refused_without_showing_it(tmp_path, key, variable):
    secret = "pat-na1-s3cr3t-never-shown"
    *sections, name = key.split(".")
    text = "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(sections))
    text += f"{'  ' * len(sections)}{name}: {secret}\n"
    error = refused(tmp_path, text)
    assert error.key == key
    assert variable in str(error) and "environment only" in str(error)
    assert secret not in str(error) and secret not in repr(error.args)
    assert error.__cause__ is None and error.__context__ is None  # pydantic's error (with the value) is not chained


@pytest.mark.parametrize(("text", "key", "shown"), [
    ("ga4:\n  reread_days: true\n", "ga4.reread_days", "got True"),
    ("ga4:\n  reread_days: [3]\n", "ga4.reread_days", "got [3]"),
    ("ga4:\n  page_size: 2.5\n", "ga4.page_size", "got 2.5"),
    ("ga4:\n  timeout_seconds: .nan\n", "ga4.timeout_seconds", "got nan"),
    ("matomo:\n  requests_per_second: -0.5\n", "matomo.requests_per_second", "got -0.5"),
    ("google_ads:\n  login_customer_id: [1, 2]\n", "google_ads.login_customer_id", "got [1, 2]"),
    ("hubspot:\n  churn_date_property: 'lost date'\n", "hubspot.churn_date_property", "'lost date'"),
    ("search_console:\n  reread_data_state: fresh\n", "search_console.reread_data_state", "'all' or 'final'"),
    ("min_denominators:\n  ratio: -1\n", "min_denominators.ratio", "at least 0, got -1"),
    ("min_denominators:\n  score: yes\n", "min_denominators.score", "got True"),
    ("duckdb_path: ''\n", "duckdb_path", "a file path"),
    ("objectives_path: [a]\n", "objectives_path", "a file path"),
    ("warehouse: ducklake\n", "warehouse", "a mapping of settings (backend, ducklake)"),
    ("matomo: 3\n", "matomo", "a mapping of settings (url, site_ids,"),
])
def test_a_wrong_type_or_range_is_refused_naming_the_key_and_what_is_allowed(tmp_path, text, key, shown):
    error = refused(tmp_path, text)
    assert error.key == key
    assert f"{key} " in str(error) or f"{key}:" in str(error)
    assert shown in str(error)


def test_every_problem_of_the_file_is_named_in_one_error(tmp_path):
    error = refused(tmp_path, "ga4:\n  reread_days: 0\n  page_size: 0\nmatomo:\n  reread_days: -1\nfx_sourc: ecb\n")
    assert error.key == "ga4.reread_days"
    assert str(error).endswith("got 0 (also refused: ga4.page_size, matomo.reread_days, fx_sourc)")


def test_a_key_left_out_or_null_takes_its_default_and_given_values_are_read_exactly(tmp_path):
    s = load_settings(write(tmp_path, "ga4:\n  reread_days:\nmatomo:\nhubspot:\n  lookback_seconds: '45'\n"
                                      "search_console:\n  row_limit: 10\n  timeout_seconds: 2.5\n"
                                      "google_ads:\n  login_customer_id: 1234567890\n"), environ={})
    assert s.ga4.reread_days == 3 and s.matomo.parallel_accounts == 2 and s.matomo.requests_per_second == 5.0
    assert s.hubspot.lookback_seconds == 45 and s.search_console.row_limit == 10
    assert s.search_console.timeout_seconds == 2.5 and s.google_ads.login_customer_id == "1234567890"


def test_the_committed_config_gives_the_documented_types_and_values():
    """The public interface is unchanged: the same dataclasses, attribute types and defaults (docs/configuration.md)."""
    s = load_settings(environ={})
    assert (s.reporting_timezone, s.start_date) == ("Europe/Paris", date(2024, 1, 1))
    assert (s.ga4.reread_days, s.ga4.page_size, s.ga4.timeout_seconds, s.ga4.parallel_accounts) == (3, 250_000, 60, 10)
    assert isinstance(s.ga4.timeout_seconds, float) and isinstance(s.ga4.property_ids, tuple)
    assert (s.search_console.search_types, s.search_console.reread_days, s.search_console.reread_data_state,
            s.search_console.row_limit, s.search_console.queries_per_minute) == (("web",), 4, "all", 25_000, 1_200)
    assert (s.matomo.reread_days, s.matomo.requests_per_second, s.matomo.parallel_accounts) == (3, 5.0, 2)
    assert (s.google_ads.reread_days, s.google_ads.timeout_seconds, s.google_ads.parallel_accounts) == (30, 120.0, 4)
    assert (s.hubspot.requests_per_10s, s.hubspot.search_per_second, s.hubspot.lookback_seconds,
            s.hubspot.email_reread_days, s.hubspot.churn_date_property) == (100, 5, 300, 30, "churn_date")
    assert s.hubspot.extra_properties == {"contacts": (), "companies": (), "deals": ()}
    assert (s.reporting_currency, s.fx_source, s.fx_rates) == ("EUR", "ecb", {})
    assert s.min_denominators == {"ratio": 100.0, "seconds": 100.0, "currency": 10.0, "position": 100.0,
                                  "score": 30.0}
    assert set(s.channels) == {"ga4", "matomo", "matomo_campaign_medium", "google_ads", "hubspot"}
    assert s.channels["matomo"]["campaign"] == "campaign_tagged"


def test_secrets_come_from_the_environment_only():
    s = load_settings(environ={"MKPI_MATOMO_TOKEN": "m-token", "MKPI_HUBSPOT_TOKEN": "h-token",
                               "MKPI_GOOGLE_ADS_CLIENT_SECRET": "c-secret"})
    assert s.matomo.token == Secret("m-token") and s.hubspot.token == Secret("h-token")
    assert s.google_ads.client_secret == Secret("c-secret") and s.google_ads.developer_token is None
    assert "m-token" not in repr(s)


# --- channels: any source, values from the one vocabulary ------------------------------------------------------

VOCABULARY = ("organic_search", "paid_search", "paid_other", "email", "referral", "direct", "social",
              "campaign_tagged", "other")  # docs/kpi-rules.md "One channel vocabulary across sources"


def test_channels_take_any_source_and_every_channel_of_the_vocabulary(tmp_path):
    mapping = "".join(f"    raw_{name}: {name}\n" for name in VOCABULARY)
    s = load_settings(write(tmp_path, f"channels:\n  a_future_source:\n{mapping}  matomo:\n  ga4:\n"
                                      "    404: other\n"), environ={})
    assert s.channels["a_future_source"] == {f"raw_{name}": name for name in VOCABULARY}
    assert s.channels["matomo"] == {} and s.channels["ga4"] == {"404": "other"}


@pytest.mark.parametrize(("text", "named"), [
    ("channels:\n  ga4:\n    Direct: direkt\n", "'Direct' maps to 'direkt', which is not a channel"),
    ("channels:\n  hubspot:\n    OFFLINE: Other\n", "'OFFLINE' maps to 'Other', which is not a channel"),
    ("channels:\n  matomo:\n    search:\n", "'search' maps to None, which is not a channel"),
    ("channels:\n  matomo_campaign_medium:\n    on: social\n", "the raw value True is not text"),
])
def test_an_unknown_channel_or_raw_value_is_refused_naming_it(tmp_path, text, named):
    error = refused(tmp_path, text)
    source = text.split("\n")[1].strip().rstrip(":")
    assert error.key == f"channels.{source}"
    assert named in str(error)
    if "not a channel" in named:
        assert ", ".join(VOCABULARY) in str(error)


# --- fx_source and dated fx_rates keep their behaviour and messages --------------------------------------------


def test_dated_fx_rates_are_read_sorted_by_day(tmp_path):
    s = load_settings(write(tmp_path, "fx_source: CONFIG\nfx_rates:\n  usd:\n    '2026-07-01': 0.88\n"
                                      "    2026-01-01: 0.92\n  GBP:\n    2025-12-31: 1.15\n"), environ={})
    assert s.fx_source == "config"
    assert s.fx_rates == {"USD": ((date(2026, 1, 1), 0.92), (date(2026, 7, 1), 0.88)),
                          "GBP": ((date(2025, 12, 31), 1.15),)}


@pytest.mark.parametrize(("text", "environ", "key", "message"), [
    ("fx_source: ecbx\n", {}, "fx_source", "fx_source must be ecb (the ECB reference rates) or config (only "
                                           "fx_rates), got 'ecbx'"),
    ("{}\n", {"MKPI_FX_SOURCE": "bank"}, "fx_source", "environment variable MKPI_FX_SOURCE: fx_source must be ecb"),
    ("fx_rates:\n  USD: 0.92\n", {}, "fx_rates.USD", "fx_rates.USD must map dates to rates"),
    ("fx_rates:\n  USD: {}\n", {}, "fx_rates.USD", "fx_rates.USD must map dates to rates"),
    ("fx_rates:\n  USD:\n    soon: 0.9\n", {}, "fx_rates.USD", "fx_rates.USD: 'soon' is not an ISO date"),
    ("fx_rates:\n  USD:\n    2026-01-01: 0\n", {}, "fx_rates.USD.2026-01-01",
     "fx_rates.USD.2026-01-01 must be a positive number, got 0"),
    ("fx_rates:\n  USD:\n    2026-01-01: cheap\n", {}, "fx_rates.USD.2026-01-01",
     "fx_rates.USD.2026-01-01 must be a number, got 'cheap'"),
    ("fx_rates:\n  DOLLAR:\n    2026-01-01: 1\n", {}, "fx_rates.DOLLAR", "not a 3-letter ISO 4217 currency code"),
    ("reporting_currency: EURO\n", {}, "reporting_currency", "reporting_currency 'EURO' is not a 3-letter ISO 4217"),
])
def test_fx_settings_are_refused_with_their_messages(tmp_path, text, environ, key, message):
    error = refused(tmp_path, text, environ)
    assert error.key == key
    assert message in str(error)


# --- hubspot object types and the warehouse's own reading ------------------------------------------------------


def test_extra_properties_name_only_object_types_the_connector_reads(tmp_path):
    from connectors.hubspot import OBJECT_PROPERTIES
    from connectors.settings import HUBSPOT_OBJECT_TYPES

    assert set(HUBSPOT_OBJECT_TYPES) == set(OBJECT_PROPERTIES)
    error = refused(tmp_path, "hubspot:\n  extra_properties:\n    contact: [favourite_colour]\n")
    assert error.key == "hubspot.extra_properties.contact"
    assert "contacts, companies, deals, feedback_submissions" in str(error)
    s = load_settings(write(tmp_path, "hubspot:\n  extra_properties:\n    deals: hs_priority, hs_tag_ids\n"),
                      environ={})
    assert s.hubspot.extra_properties == {"deals": ("hs_priority", "hs_tag_ids")}


def test_the_warehouse_section_is_read_and_checked_with_the_rest(tmp_path):
    path = write(tmp_path, "warehouse:\n  ducklake:\n    data_path: s3://b/lake\n")
    assert load_settings(path, environ={}).warehouse.ducklake_data_path == "s3://b/lake"
    path = write(tmp_path, "warehouse:\n  backnd: ducklake\n")
    with pytest.raises(ConfigError, match="unknown key warehouse.backnd .did you mean backend.") as caught:
        load_settings(path, environ={})
    assert caught.value.key == "warehouse.backnd"


# --- mkpi doctor validates both files first ----------------------------------------------------------------------


def doctor(monkeypatch, config: str | None = None, objectives: str | None = None) -> tuple[int, str]:
    """`mkpi doctor` with nothing configured but the given files (no platform is called)."""
    import contextlib
    import io
    import os

    from pipelines.cli import main

    for name in [k for k in os.environ if k.startswith("MKPI_")]:
        monkeypatch.delenv(name)
    if config is not None:
        monkeypatch.setenv("MKPI_CONFIG", config)
    if objectives is not None:
        monkeypatch.setenv("MKPI_OBJECTIVES", objectives)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["doctor"])
    return code, out.getvalue() + err.getvalue()


def test_doctor_reports_both_files_valid(monkeypatch):
    code, out = doctor(monkeypatch)
    assert code == 0, out
    assert "✓ Configuration" in out and "every key valid" in out
    assert "objectives file" in out and "objective(s) valid" in out
    assert "✗" not in out


def test_doctor_refuses_a_misspelt_config_key_before_any_platform(monkeypatch, tmp_path):
    config = write(tmp_path, "ga4:\n  reread_dayz: 2\n")
    code, out = doctor(monkeypatch, config=str(config))
    assert code == 1
    assert "✗ Configuration" in out
    assert out.count("✗ ") == 2  # the block and its one finding
    assert f"config file {config}: unknown key ga4.reread_dayz (did you mean reread_days?)" in " ".join(out.split())
    assert "no platform was checked" in out and "not configured" not in out


def test_doctor_refuses_an_unknown_kpi_in_the_objectives_file(monkeypatch, tmp_path):
    objectives = tmp_path / "objectives.yaml"
    objectives.write_text("objectives:\n  - kpi: sesions\n    source: ga4\n    period: month\n    target: 80000\n")
    code, out = doctor(monkeypatch, objectives=str(objectives))
    assert code == 1
    flat = " ".join(out.split())
    assert "✗ Configuration" in out and "every key valid" in out  # the config file itself is fine
    assert f"{objectives}: objectives[0] (kpi sesions): unknown kpi 'sesions'" in flat
    assert "The configuration files need attention" in out
    assert out.count("not configured") == len(registry.codes())  # every registered platform is still checked
