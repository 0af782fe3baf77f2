"""Checks every run makes before its first request: the configuration and the objectives file (issue #19 item 11).

Why: the objectives file used to be read only by the `kpi_vs_objective` step, after raw and KPI tables were
committed and the analysts' copy published; a typo there cost a whole run's quota and left stale objectives on
the dashboard. Both files are now read and checked first, by `mkpi backfill` before it launches a run and by
every Dagster run when its resources are set up (pipelines/lib/resources.py), so nothing is requested, written
or published on a configuration that will fail later.

Also here: reading the configuration so that ANY unreadable value is a ConfigError naming the file, the line and
the key (issue #19 item 12). PyYAML builds dates while parsing and raises a bare ValueError for `2026-13-45`,
which no caller expected; the key is found again by composing the file without building values.

No Dagster import: `mkpi doctor` and `mkpi backfill` use this before Dagster is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from connectors.errors import ConfigError, ConnectorError
from connectors.settings import DEFAULT_CONFIG_PATH, SECRET_KEYS, Settings, load_settings

# exceptions PyYAML's constructors (dates, timestamps, numbers) raise for a value they cannot build
_UNREADABLE = (ValueError, TypeError, OverflowError, yaml.YAMLError)
_SHOWN_CHARS = 40


def read_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """The settings, or a ConfigError naming the file and the key for any value that cannot be read.

    `load_settings` already names every refused value; this adds the values YAML itself cannot build."""
    try:
        return load_settings(config_path)
    except ConnectorError:
        raise
    except _UNREADABLE as exc:
        raise unreadable_config(config_path, exc) from None


def check_run_inputs(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """The configuration and the objectives file, both checked as the run will use them; the first problem is
    raised (ConfigError, or ObjectiveError naming the objectives file and the entry) before any request."""
    from kpi_models.objectives import load_objectives  # the catalogue and DuckDB helpers: only when checking

    settings = read_settings(config_path)
    load_objectives(settings.objectives_path)
    return settings


def config_file(config_path: str | os.PathLike[str] | None = None) -> Path:
    """The file `load_settings` reads: the argument, else MKPI_CONFIG, else config/mkpi.yaml."""
    text = config_path or os.environ.get("MKPI_CONFIG")
    return Path(text) if text else DEFAULT_CONFIG_PATH


def unreadable_config(config_path: str | os.PathLike[str] | None, exc: BaseException) -> ConfigError:
    """A ConfigError for a value YAML could not build: the file, the line, the key and YAML's reason."""
    path = config_file(config_path)
    reason = " ".join(str(exc).split()) or type(exc).__name__
    try:
        culprit = next(_unbuildable_scalars(path.read_text(encoding="utf-8")), None)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        culprit = None
    if culprit is None:
        return ConfigError(f"config file {path} cannot be read: {reason}")
    keys, raw, line = culprit
    key = ".".join(keys)
    # a secret is never shown; a key that is itself the bad date is already in `key`
    hidden = tuple(keys) in SECRET_KEYS or keys[-1:] == [raw] or len(raw) > _SHOWN_CHARS
    shown = "" if hidden else f" {raw!r}"
    return ConfigError(f"config file {path}, line {line}: {key}{shown} cannot be read ({reason}); write a valid "
                       "value (a date as YYYY-MM-DD), or quote it", key=key)


def _unbuildable_scalars(text: str) -> Iterator[tuple[list[str], str, int]]:
    """(key path, raw text, line) of each scalar, key or value, that PyYAML's safe loader cannot build."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return
    loader = yaml.SafeLoader("")

    def fails(node: yaml.Node) -> bool:
        try:
            loader.construct_object(node, deep=True)
        except _UNREADABLE:
            return True
        return False

    def walk(node: yaml.Node, keys: list[str]) -> Iterator[tuple[list[str], str, int]]:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                if isinstance(key_node, yaml.ScalarNode) and fails(key_node):
                    yield [*keys, name], str(key_node.value), key_node.start_mark.line + 1
                yield from walk(value_node, [*keys, name])
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                yield from walk(item, [*keys[:-1], f"{keys[-1] if keys else ''}[{index}]"])
        elif isinstance(node, yaml.ScalarNode) and fails(node):
            yield keys, str(node.value), node.start_mark.line + 1

    yield from walk(root, [])

