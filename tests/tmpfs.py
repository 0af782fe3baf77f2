"""Throw-away Dagster test instances on a memory-backed file system, for tests that do not check durability.

A SQLite instance (``dagster.instance_for_test``) commits every event with an fsync; on this machine's disk a one-op
stand-in run costs about a second of such waits (4 runs: 2.9-4.3 s in /tmp, 0.8-1.6 s in /dev/shm). Where /dev/shm
(tmpfs) is writable the instance's directory is made there, otherwise in the default temporary directory: the
storage, its schema and its API are the same, only the medium differs.

Such an instance also keeps no compute logs (Dagster's NoOpComputeLogManager): the local one starts a `tail -F` and a
Python watcher process per captured step, costs their start-up, and once hung a loaded machine's in-process run for
60 s cleaning them up (`dagster/_core/execution/compute_logs.py`, `communicate(timeout=30)` twice). No test using
this helper reads a step's stdout.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

SHM = Path("/dev/shm")
NO_COMPUTE_LOGS = {"compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager",
                                    "class": "NoOpComputeLogManager"}}


def memory_dir() -> str | None:
    """/dev/shm when it is a writable directory, else None (the system's temporary directory)."""
    return str(SHM) if SHM.is_dir() and os.access(SHM, os.W_OK) else None


@contextmanager
def memory_folder(prefix: str) -> Iterator[str]:
    """A temporary folder on tmpfs when there is one (`memory_dir`), removed afterwards: a Dagster home whose
    instance checks no durability."""
    with tempfile.TemporaryDirectory(dir=memory_dir(), prefix=prefix) as folder:
        yield folder


@contextmanager
def instance_in_memory(overrides: dict[str, Any] | None = None) -> Iterator[dg.DagsterInstance]:
    """``dagster.instance_for_test(overrides)`` without compute logs, its directory on tmpfs when there is one;
    removed afterwards."""
    with memory_folder("mkpi-instance-") as home, \
            dg.instance_for_test(overrides={**NO_COMPUTE_LOGS, **(overrides or {})}, temp_dir=home) as instance:
        yield instance
