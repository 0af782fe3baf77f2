"""What every `mkpi` command shares: its errors, its console, secret redaction, log levels and status marks.

Business purpose: errors are one sentence plus the fix, and no secret is ever printed; every command prints through
these helpers so they all say things the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from connectors.probe import first_line as first_line  # the one first-line helper, re-exported for the commands
from connectors.settings import Secret, Settings

OK, FAIL, SKIP = "✓", "✗", "-"


class CliError(Exception):
    """A failure the user can fix: one sentence, the fix, and the exit code (2 = bad usage)."""

    def __init__(self, message: str, fix: str | None = None, code: int = 1) -> None:
        super().__init__(message)
        self.fix = fix
        self.code = code


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a run executed: the run was marked canceled and its pool slots freed.

    `worker_alive`: the run's thread was still inside a step; the process must end without waiting for it
    (main() then exits at once, as a kill would, which every write survives; the crash battery proves it)."""

    def __init__(self, message: str, code: int, worker_alive: bool) -> None:
        super().__init__(message)
        self.code = code
        self.worker_alive = worker_alive


CONFIG_FIX = ("correct that key: docs/configuration.md lists every key, its default and its allowed values "
              "(`mkpi doctor` checks both files)")
OBJECTIVES_FIX = ("correct that entry: docs/configuration.md#the-objectives-file lists the fields; KPI names are "
                  "those of kpi_models/catalogue.yaml (`mkpi doctor` checks both files)")


def make_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr); 140 columns when not a terminal, so captured tables are not squeezed."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 140
    return console


def known_secrets(settings: Settings | None) -> list[str]:
    """Every credential the settings hold: anything printed passes through `redact` with these."""
    found: list[str] = []
    if settings is None:
        return found

    def walk(obj: Any) -> None:
        if isinstance(obj, Secret):
            found.append(obj.reveal())
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                walk(getattr(obj, f.name))

    walk(settings)
    return [s for s in found if s]


@contextmanager
def log_levels(levels: dict[str, int]) -> Iterator[None]:
    """Set some loggers' levels for one command, then restore them (main() also runs in-process, e.g. in tests)."""
    saved = {name: logging.getLogger(name).level for name in levels}
    try:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
