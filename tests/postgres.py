"""A real, throw-away PostgreSQL server for the tests that need one (issue #10: Dagster storage, DuckLake catalog).

Debian's ``postgresql`` package (installed by ``.ci/run``) provides ``initdb`` and ``pg_ctl``; the server gets a
temporary data directory, a free port on 127.0.0.1 and trust authentication, and is stopped afterwards. PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` system user the package creates. Where
none of this exists the test is skipped with the reason.

`postgres_server(directory)` starts a server of its own (bench/bench_demo.py, tests that need one to themselves).
`file_server(config, label)` hands a test file its share of one server per pytest process (per xdist worker), started
by the first file that asks and stopped when the session ends: the file's databases are named with its label as a
prefix and dropped (their sessions ended) when the file is done, so nothing a file leaves is seen by the next.
A server costs ~0.7 CPU-s and ~2 s to initialise, start and stop.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from tests.ports import free_port


def _skip(reason: str) -> NoReturn:
    """pytest's skip inside a test; outside pytest (bench/bench_demo.py, whose extra has no pytest) an error."""
    try:
        import pytest
    except ImportError:
        raise RuntimeError(reason) from None
    pytest.skip(reason)


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    database: str
    prefix: str = ""  # the start of every database name create_database makes (a file's share of a shared server)

    @property
    def url(self) -> str:
        """SQLAlchemy/libpq URL (no password: trust authentication on loopback)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def libpq(self) -> str:
        """libpq key/value connection string, as DuckDB's postgres extension takes it."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.database}"

    def psql(self, sql: str) -> str:
        return subprocess.run([_binary("psql"), "-X", "-A", "-t", "-h", self.host, "-p", str(self.port), "-U",
                               self.user, "-d", self.database, "-c", sql],
                              check=True, capture_output=True, text=True).stdout.strip()

    def create_database(self, name: str) -> Postgres:
        """A new database, `name` after this handle's prefix (PostgreSQL keeps 63 characters of a name)."""
        full = f"{self.prefix}{name}"[:63]
        self.psql(f'CREATE DATABASE "{full}"')
        return Postgres(self.host, self.port, self.user, full, self.prefix)

    def drop_databases(self) -> None:
        """Drop every database named with this handle's prefix, ending its sessions (a file's leftovers)."""
        assert self.prefix, "only a file's share of a server drops its databases"
        names = self.psql(f"SELECT datname FROM pg_database WHERE starts_with(datname, '{self.prefix}')").split()
        for name in names:
            self.psql(f'DROP DATABASE "{name}" WITH (FORCE)')


def _binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        _skip(f"PostgreSQL's {name} is not installed (Debian package 'postgresql'; .ci/run installs it)")
    return path


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        _skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    if runuser is None:
        _skip("running as root and 'runuser' is missing")
    return [runuser, "-u", "postgres", "--", *argv]


@contextmanager
def postgres_server(directory: Path) -> Iterator[Postgres]:
    """Start PostgreSQL in a directory of its own; yields the server, then stops it and removes the directory.

    As root the server's data lives in a fresh folder directly under the system temp folder, not in ``directory``
    (pytest's temp tree): every pytest session started meanwhile on the machine resets /tmp/pytest-of-root to mode
    0700, which cut the postgres user off its data directory in the middle of a run (PANIC: could not open
    pg_control: Permission denied). ``directory`` then receives a copy of the server log."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    directory.mkdir(parents=True, exist_ok=True)
    own = Path(tempfile.mkdtemp(prefix="mkpi-pg-")) if os.geteuid() == 0 else directory
    try:
        with _server(initdb, pg_ctl, own) as server:
            yield server
    finally:
        if own != directory:
            if (own / "server.log").exists():
                shutil.copyfile(own / "server.log", directory / "server.log")
            shutil.rmtree(own, ignore_errors=True)


@contextmanager
def _server(initdb: str, pg_ctl: str, directory: Path) -> Iterator[Postgres]:
    data = directory / "pgdata"
    if os.geteuid() == 0:
        os.chmod(directory, 0o777)
        for parent in directory.parents:  # the server user must reach its data directory
            if parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
    port = free_port()
    subprocess.run(_as_server_user([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                    "--no-sync"]), check=True, capture_output=True)
    options = f"-p {port} -h 127.0.0.1 -k {directory} -c fsync=off -c max_connections=200"
    subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-o", options, "-l", str(directory / "server.log"),
                                    "-w", "-t", "60", "start"]), check=True, capture_output=True)
    try:
        yield Postgres("127.0.0.1", port, "postgres", "postgres")
    finally:
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)


_SHARED: list[Postgres] = []  # this process's shared server, once a file has started it


def _shared_server(config: Any) -> Postgres:
    """This process's shared server, started on first use; stopped (and its folder removed) at the session's end."""
    if not _SHARED:
        stack = ExitStack()
        try:
            directory = Path(tempfile.mkdtemp(prefix="mkpi-pg-shared-"))
            stack.callback(shutil.rmtree, directory, True)
            server = stack.enter_context(postgres_server(directory / "server"))
        except BaseException:  # a skip (PostgreSQL missing) or a failed start: nothing is left running
            stack.close()
            raise
        config.add_cleanup(stack.close)
        config.add_cleanup(_SHARED.clear)
        _SHARED.append(server)
    return _SHARED[0]


@contextmanager
def file_server(config: Any, label: str) -> Iterator[Postgres]:
    """A test file's share of this process's PostgreSQL server (`config`: pytest's, whose end stops the server): its
    `create_database` names databases `<label>_<name>`; those are dropped when the file is done. `label` must be
    unique among the files and a plain identifier."""
    assert label.isidentifier(), label
    server = _shared_server(config)
    share = Postgres(server.host, server.port, server.user, server.database, prefix=f"{label}_")
    try:
        yield share
    finally:
        share.drop_databases()
