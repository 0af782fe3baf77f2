"""The reliability battery's own report (issue #8): `docs/reliability.md` is written by the tests, not by hand.

A battery test is marked ``@pytest.mark.battery("Chaos")`` (the line of the report it proves) and may add
figures with :func:`count` (summed over the line's runs) or :func:`note` (free text, kept in order). When
``MKPI_RELIABILITY_REPORT`` names a file (``make chaos`` sets it to ``docs/reliability.md``), the session
writes one row per line: runs passed / runs, and the figures.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path


def full_mode(env: Mapping[str, str] = os.environ) -> bool:
    """Whether this session is the full battery (``make chaos``) rather than ``make test``'s short version.

    One switch for every test file: ``MKPI_FULL=1``, or the variables ``make chaos`` sets (``MKPI_CHAOS_SEEDS`` of
    50 or more, or ``MKPI_CRASH_REPEATS`` set), which earlier reports were written with. Tests and cases only the
    full battery runs are marked ``@pytest.mark.full`` (skipped otherwise, by conftest); sizes that differ between
    the two versions read :data:`FULL`. ``MKPI_CHAOS_SEEDS`` and ``MKPI_CRASH_REPEATS`` keep their own meaning too:
    how many chaos seeds, how many repetitions of each kill.
    """
    if env.get("MKPI_FULL", "").strip() not in ("", "0"):
        return True
    seeds = env.get("MKPI_CHAOS_SEEDS", "").strip()
    return (seeds.isdigit() and int(seeds) >= 50) or "MKPI_CRASH_REPEATS" in env


FULL = full_mode()

# line -> figure name -> summed value; line -> notes; line -> [passed, run]
_COUNTS: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
_NOTES: dict[str, list[str]] = defaultdict(list)
_RUNS: dict[str, list[int]] = defaultdict(lambda: [0, 0])
_ORDER = ["Chaos", "Persistent outage", "Fault isolation", "Crash", "Stuck writer slot", "Idempotence", "Determinism",
          "Concurrency", "Locked working file", "Disk full", "Bad input", "Configuration before the first request",
          "Unreadable configuration value", "Out-of-window answers", "Schema drift", "Hostile answers",
          "Cross-host redirects", "Secrets"]


def count(line: str, name: str, value: float = 1) -> None:
    """Add ``value`` to the figure ``name`` of ``line`` (requests, retries, cases, ...)."""
    _COUNTS[line][name] += value


def note(line: str, text: str) -> None:
    """Attach one sentence of evidence to ``line``."""
    _NOTES[line].append(text)


def outcome(line: str, passed: bool) -> None:
    """Called by the pytest hook in conftest for every battery test that ran."""
    _RUNS[line][1] += 1
    _RUNS[line][0] += int(passed)


def _figure(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def _commit() -> str:
    """The commit the battery ran on (with "+ uncommitted changes" when the work tree differs from it)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        # the report itself (rewritten by every battery run) is not a change to what was tested
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)docs/reliability.md"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" + uncommitted changes" if dirty else "")


def render(command: str) -> str:
    lines = sorted(_RUNS, key=lambda line: (_ORDER.index(line) if line in _ORDER else len(_ORDER), line))
    out = [
        "# Reliability battery results",
        "",
        "Written by the battery itself (`tests/battery.py`); do not edit by hand. Regenerate with "
        f"`{command}`.",
        "",
        f"- When: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Commit: {_commit()}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{platform.system()} {platform.release()}",
        "",
        "| Line | Runs passed / run | Figures |",
        "| --- | --- | --- |",
    ]
    for line in lines:
        passed, run = _RUNS[line]
        figures = ", ".join(f"{name}: {_figure(value)}" for name, value in _COUNTS[line].items())
        out.append(f"| {line} | {passed} / {run} | {figures} |")
    out.append("")
    for line in lines:
        if _NOTES[line]:
            out += [f"## {line}", ""] + [f"- {text}" for text in _NOTES[line]] + [""]
    return "\n".join(out)


def write_report(path: str, command: str) -> None:
    if _RUNS:
        Path(path).write_text(render(command), encoding="utf-8")
