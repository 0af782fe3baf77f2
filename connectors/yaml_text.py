"""YAML texts parsed once per process: the configuration (connectors/settings.py) and the objectives file
(kpi_models/objectives.py) are read again by every step, check and command (~50 times in one `mkpi backfill`), and
PyYAML's pure-Python parse costs ~8-12 ms of CPU each time (issues #20, #21).

The parse is kept per whole text, not per path or modification time: any edit is read, even one of the same size
within the same clock tick. Each caller gets its own deep copy (~0.1 ms), what a fresh parse would give, so callers
may change it. A text that does not parse is never kept and raises the same `yaml.YAMLError` every time.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

PARSED_MAX = 16  # texts kept (tests write many small files); emptied when full
_PARSED: dict[str, Any] = {}


def parsed_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, parsed once per text; a copy of its own for each caller."""
    if text not in _PARSED:
        loaded = yaml.safe_load(text)
        if len(_PARSED) >= PARSED_MAX:
            _PARSED.clear()
        _PARSED[text] = loaded
    return copy.deepcopy(_PARSED[text])
