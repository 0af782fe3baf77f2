"""The config file is read again on every load: an edit is seen by the next load, even one that keeps the file's
size and lands in the same clock tick, and a caller changing what it was given changes nothing for the next one.

Why: connectors/settings.py keeps the parsed mapping of each config text it has read (the YAML parse is most of a
load's CPU, and every step and command loads the settings). These tests guard that the cache is keyed by the text
itself and hands out copies, so a cached load is exactly a fresh one.
"""

from __future__ import annotations

import os

import pytest

from connectors import settings
from connectors.settings import ConfigError, load_settings


def test_an_edit_of_the_same_size_and_mtime_is_seen_by_the_next_load(tmp_path):
    path = tmp_path / "mkpi.yaml"
    path.write_text("hubspot:\n  requests_per_10s: 120\n", encoding="utf-8")
    stamp = os.stat(path).st_mtime_ns
    assert load_settings(path, environ={}).hubspot.requests_per_10s == 120
    path.write_text("hubspot:\n  requests_per_10s: 130\n", encoding="utf-8")  # same size
    os.utime(path, ns=(stamp, stamp))  # and the same modification time
    assert load_settings(path, environ={}).hubspot.requests_per_10s == 130
    path.write_text("hubspot:\n  requests_per_10s: 120\n", encoding="utf-8")  # back to a text read before
    assert load_settings(path, environ={}).hubspot.requests_per_10s == 120


def test_a_caller_changing_the_parsed_mapping_changes_nothing_for_the_next_read(tmp_path):
    path = tmp_path / "mkpi.yaml"
    path.write_text("hubspot:\n  requests_per_10s: 120\n", encoding="utf-8")
    first = settings._read_yaml(path)
    first["hubspot"]["requests_per_10s"] = 1
    first["ga4"] = {}
    assert settings._read_yaml(path) == {"hubspot": {"requests_per_10s": 120}}


def test_an_invalid_file_is_refused_on_every_load(tmp_path):
    path = tmp_path / "mkpi.yaml"
    path.write_text("hubspot: [unclosed\n", encoding="utf-8")
    for _ in range(2):  # a refused text is never kept
        with pytest.raises(ConfigError, match="is not valid YAML"):
            load_settings(path, environ={})
    path.write_text("- a list\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ConfigError, match="must be a mapping at the top level"):
            load_settings(path, environ={})
