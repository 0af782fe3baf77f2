"""Settings: environment overrides the YAML file; bad values fail with a clear message."""

import pytest

from connectors.errors import ConfigError
from connectors.settings import load_settings


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
