"""Writer processes forked from one preloaded server per test module (tests/test_ducklake.py, tests/test_crash.py)."""

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def writer_processes(preload: list[str]) -> Iterator[Any]:
    """The multiprocessing context of the writer processes: forks of a server process that has imported the
    modules `preload` names (tests/test_ducklake.py: itself, i.e. duckdb, pyarrow and the loader, with no connection
    open at import; tests/test_crash.py: tests.crash_child), each still its own OS process with its own DuckDB
    instance and catalog connection, without four interpreters importing the same modules (~1.5 CPU-s each).
    One server serves a test module's tests (each writer sets its test's environment). It is stopped at the end
    (Python's own ForkServer._stop), so none outlives the module; one that this process already ran is used as it
    is, its preload standing (the writers import what else they need)."""
    from multiprocessing import forkserver

    server = forkserver._forkserver  # noqa: SLF001 - the module's one server, whose stop Python has no public call for
    ours = server._forkserver_pid is None  # noqa: SLF001
    ctx = multiprocessing.get_context("forkserver")
    if ours:
        ctx.set_forkserver_preload(preload)
    try:
        yield ctx
    finally:
        if ours:
            server._stop()  # noqa: SLF001 - closes its alive pipe and waits for it (its writers have ended)
