"""What every benchmark shares: timing, medians with min-max, peak RSS, result rows and the table.

Why one module: every target reports the same way (median of N runs with min-max, and a ratio against a
baseline measured in the same run), so `run_all.py` can print one table and write docs/benchmarks.md.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sample:
    """Repeated measurements of one quantity: the median is reported, min-max shows the spread."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def show(self, unit: str = "", digits: int = 3) -> str:
        if len(self.values) == 1 or self.low == self.high:
            return f"{self.median:.{digits}g}{unit}"
        return f"{self.median:.{digits}g}{unit} ({self.low:.{digits}g}-{self.high:.{digits}g})"


def repeat(fn: Callable[[], float], runs: int) -> Sample:
    """Call `fn` (which returns one measurement) `runs` times."""
    return Sample(tuple(fn() for _ in range(runs)))


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes (perf_counter)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ratio_sample(numerators: Sequence[float], denominators: Sequence[float]) -> Sample:
    """Per-run ratios: each run's figure over the same run's baseline, so machine noise cancels."""
    return Sample(tuple(n / d for n, d in zip(numerators, denominators, strict=True) if d))


@dataclass
class Row:
    """One line of the results table: a measured figure, its baseline, the ratio and the goal.

    The text fields are what the table shows. The optional typed fields make the row exact in
    docs/benchmarks.json (`record`): `sample` (the figure's runs: median, min, max, runs), `base` (the baseline),
    `ratios` (per-run ratios), `limit` (the goal's number); without them the numbers are read from the text.
    `size` says what the figure was measured on, `includes` what the measured time or memory covers."""

    target: str
    what: str
    value: str
    baseline: str = ""
    ratio: str = ""
    goal: str = ""
    ok: bool | None = None
    notes: list[str] = field(default_factory=list)
    size: str = ""
    includes: str = ""
    sample: Sample | None = None
    base: float | None = None
    ratios: Sample | None = None
    limit: float | None = None

    @property
    def status(self) -> str:
        return "" if self.ok is None else ("pass" if self.ok else "FAIL")


_NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_RANGE = re.compile(rf"\(({_NUMBER})k?\s*-\s*({_NUMBER})k?\)", re.IGNORECASE)


def first_number(text: str) -> float | None:
    """The first number in a table cell ("1,043k (832-1,107) rows/s" -> 1043000.0; "<= 1.3x" -> 1.3), or None.

    A `k` right after the number is thousands, as `show` never writes but some rows do by hand."""
    match = re.search(rf"({_NUMBER})(k\b)?", text.replace(",", ""), re.IGNORECASE)
    if match is None:
        return None
    return float(match.group(1)) * (1000.0 if match.group(2) else 1.0)


def _spread(text: str) -> tuple[float | None, float | None]:
    """The "(min-max)" a shown Sample carries, scaled like its median when the cell is in thousands."""
    match = _RANGE.search(text.replace(",", ""))
    if match is None:
        return None, None
    scale = 1000.0 if re.search(rf"{_NUMBER}k", text.replace(",", "")) else 1.0
    return float(match.group(1)) * scale, float(match.group(2)) * scale


def record(row: Row, *, module: str, runs: int | None, size: str, commit: str, measured_at: str) -> dict[str, Any]:
    """One row as the object docs/benchmarks.json holds (issue #21 target 7): `target`, `value`, `baseline`,
    `ratio`, `goal`, `met`, `size`, `runs`, `min`, `max`, `commit`, plus what the Markdown needs to be rebuilt
    from the JSON alone (`measure`, `shown`, `includes`, `notes`, `module`, `measured_at`)."""
    if row.sample is not None:
        value, low, high, count = row.sample.median, row.sample.low, row.sample.high, len(row.sample.values)
    else:
        value = first_number(row.value)
        low, high = _spread(row.value)
        low, high = (value, value) if low is None and value is not None else (low, high)
        count = runs
    ratio = row.ratios.median if row.ratios is not None else first_number(row.ratio)
    return {
        "target": row.target, "measure": row.what.strip(), "value": value,
        "baseline": row.base if row.base is not None else first_number(row.baseline),
        "ratio": ratio, "goal": row.limit if row.limit is not None else first_number(row.goal),
        "met": row.ok, "size": row.size or size, "runs": count, "min": low, "max": high,
        "commit": commit, "measured_at": measured_at, "module": module, "includes": row.includes,
        "shown": {"value": row.value, "baseline": row.baseline, "ratio": row.ratio, "goal": row.goal,
                  "status": row.status, "measure": row.what},
        "notes": list(row.notes),
    }


def shown_row(obj: dict[str, Any]) -> Row:
    """A JSON object back as a table row (the Markdown is written from docs/benchmarks.json alone)."""
    shown = obj.get("shown", {})
    return Row(obj["target"], shown.get("measure", obj.get("measure", "")), shown.get("value", str(obj["value"])),
               shown.get("baseline", ""), shown.get("ratio", ""), shown.get("goal", ""), obj.get("met"),
               list(obj.get("notes", [])), obj.get("size", ""), obj.get("includes", ""))


HEADERS = ("target", "measure", "value", "baseline", "ratio", "goal", "status")


def table(rows: Sequence[Row]) -> str:
    """A Markdown table (also readable on a terminal)."""
    cells = [HEADERS] + [(r.target, r.what, r.value, r.baseline, r.ratio, r.goal, r.status) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(len(HEADERS))) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def rss_mb() -> float:
    """Current resident set size of this process, MB (psutil when installed, else /proc)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_of(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run `python args...` in a fresh process; return its peak RSS in MB (its VmHWM) and its stdout.

    A child process is the only honest peak: this process's own high-water mark includes earlier work."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=True)
    peak = None
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK_RSS_MB "):
            peak = float(line.split()[1])
    if peak is None:
        raise RuntimeError(f"{args}: child did not report PEAK_RSS_MB; stderr: {proc.stderr[-2000:]}")
    return peak, proc.stdout


def report_peak_rss() -> None:
    """Print this process's peak RSS for `peak_rss_of`: VmHWM, the high-water mark of this process's own memory.

    Not ru_maxrss: Linux carries it over from the parent across fork and exec, so a child of a big benchmark
    process would report the parent's size (the first run of target 5 did: 1230 MB at 1M and 5M alike)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                print(f"PEAK_RSS_MB {int(line.split()[1]) / 1024:.1f}", flush=True)
                return
    import resource

    print(f"PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)


def machine() -> dict[str, str]:
    """What the figures were measured on, for docs/benchmarks.md."""
    import platform

    import duckdb
    import pyarrow

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory"] = f"{int(f.readline().split()[1]) / 2**20:.1f} GB"
    except OSError:
        pass
    for package in ("dlt", "dagster", "hubspot-api-client", "psutil"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:  # not installed: say so rather than fail
            info[package] = "not installed"
    return info
