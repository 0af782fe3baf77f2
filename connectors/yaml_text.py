"""YAML texts parsed once per process: the configuration (connectors/settings.py) and the objectives file
(kpi_models/objectives.py) are read again by every step, check and command (~50 times in one `mkpi backfill`), and
PyYAML's pure-Python parse costs ~8-12 ms of CPU each time (issues #20, #21).

The parse is kept per whole text, not per path or modification time: any edit is read, even one of the same size
within the same clock tick. Each caller gets its own deep copy (~0.1 ms), what a fresh parse would give, so callers
may change it. A text that does not parse is never kept and raises the same `yaml.YAMLError` every time.

`safe_load` is PyYAML's safe loader on libyaml's scanner and parser (`yaml.CSafeLoader`, in PyYAML's wheels) where
it is there: the same constructors and resolvers as `yaml.safe_load` (Python's, which decide every value), so the same
values; ~11x less CPU (kpi_models/catalogue.yaml: 37 -> 3.4 ms, the packaged catalogue is parsed in every process
that builds KPIs or definitions). Every YAML file of the repository was compared equal through both. Its syntax
errors name the same line and column, without the snippet of the text that Python's parser prints under them.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

_LOADER: type = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
PARSED_MAX = 16  # texts kept (tests write many small files); emptied when full
_PARSED: dict[str, Any] = {}


def safe_load(text: str) -> Any:
    """`yaml.safe_load(text)`'s value, parsed by libyaml where PyYAML has it (see the module)."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)


def parsed_yaml(text: str) -> Any:
    """`safe_load(text)`, parsed once per text; a copy of its own for each caller."""
    if text not in _PARSED:
        loaded = safe_load(text)
        if len(_PARSED) >= PARSED_MAX:
            _PARSED.clear()
        _PARSED[text] = loaded
    return copy.deepcopy(_PARSED[text])
