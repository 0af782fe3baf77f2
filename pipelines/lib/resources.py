"""Dagster resources: thin wrappers that hand settings to plain-Python connectors and the loader.

Why thin: connectors and the loader must run (and be tested) without Dagster. Settings are read when a run sets a
resource up (environment over config file), once per run and process, and kept on the resource for the run's steps
(`settings()`), so a secret is never part of run config or the UI and no call re-reads the files. The secrets Dagster
shows by name are real fields bound to `EnvVar`s (pipelines/defs/resources.py).

Every resource checks the configuration and the objectives file when a run sets it up, before any step asks a
platform for anything (pipelines/lib/preflight.py): a wrong value fails the run at once, naming the file and the
key, instead of after the raw tables were loaded and the analysts' copy published.
"""


import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from connectors import registry
from connectors.batches import Batch
from connectors.errors import ConnectorError
from connectors.ga4 import Ga4Connector
from connectors.google_ads import GoogleAdsConnector
from connectors.hubspot import HubSpotConnector
from connectors.matomo import MatomoConnector
from connectors.search_console import SearchConsoleConnector
from connectors.settings import Secret, Settings, WarehouseSettings, load_settings
from connectors.warehouse import LoadResult, load_batches, open_warehouse
from pipelines.lib.preflight import check_run_inputs

log = logging.getLogger("mkpi.resources")

# How long a step waits for another process to let go of the working DuckDB file before it fails naming that
# process. A pipeline writer holds it for one load (seconds; the duckdb_write pool keeps writers apart anyway);
# a notebook or the DuckDB CLI holds it until closed, so waiting longer only delays the message.
LOCK_WAIT_SECONDS = 60.0
# DuckDB's lock error (duckdb/duckdb src/common/local_file_system.cpp, LocalFileSystem::OpenFile: fcntl F_SETLK
# fails, F_GETLK names the holder), verbatim from duckdb 1.5.5: 'IO Error: Could not set lock on file "<path>":
# Conflicting lock is held in <program> (PID <n>) [by user <u>]. However, you would be able to open this database
# in read-only mode...'. Where the OS does not say who holds it, only the first sentence is there.
_LOCK_ERROR = "Could not set lock on file"
# Per process: the file a step gave up on, and who held it. The next step of the run that finds the same process
# still holding the file fails at once instead of waiting LOCK_WAIT_SECONDS again (3 GA4 steps would wait 3 minutes).
_GAVE_UP: dict[str, int | None] = {}
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)"
                          r"(?: by user (?P<user>[^.\s]+))?")


# Runs whose files this process already checked, with the settings the check read: a run sets up several resources
# (in each step's process), one check and one read is enough for all of them.
_CHECKED_RUNS: dict[tuple[str, str | None], Settings] = {}


class _CheckedResource(dg.ConfigurableResource):
    """A resource that checks both files when a run sets it up (once per run and process)."""

    config_path: str | None = None
    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        key = (context.run_id or "", self.config_path)
        if not key[0] or key not in _CHECKED_RUNS:
            _CHECKED_RUNS[key] = check_run_inputs(self.config_path)
        self._settings = _CHECKED_RUNS[key]

    def settings(self) -> Settings:
        """The settings read when the run set this resource up (read now when used outside a run)."""
        return self._settings if self._settings is not None else load_settings(self.config_path)


class SettingsResource(_CheckedResource):
    """Pipeline settings: `config/mkpi.yaml` (or MKPI_CONFIG), overridden by MKPI_* variables."""

    def load(self) -> Settings:
        return self.settings()


@dataclass(frozen=True)
class LockHolder:
    """The process holding a DuckDB file, as DuckDB's error names it, with its name from the OS where readable."""

    program: str | None = None
    pid: int | None = None
    user: str | None = None

    @classmethod
    def from_error(cls, exc: BaseException) -> "LockHolder | None":
        """The holder named by a DuckDB lock error (empty when DuckDB could not tell); None for any other error."""
        if _LOCK_ERROR not in str(exc):
            return None
        match = _LOCK_HOLDER.search(str(exc))
        return cls(match["program"], int(match["pid"]), match["user"]) if match else cls()

    def describe(self) -> str:
        """'PID 4242 (duckdb, /usr/bin/duckdb, user ann)': what `ps` or the task manager shows."""
        if self.pid is None:
            return "another process (the operating system did not say which: `lsof <file>` or `fuser <file>` does)"
        details = [name for name in (_process_name(self.pid), self.program) if name]
        details += [f"user {self.user}"] if self.user else []
        return f"PID {self.pid} ({', '.join(dict.fromkeys(details))})"


def _process_name(pid: int) -> str | None:
    """The holder's command name from /proc (Linux; the name only, never its arguments), else None."""
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class WorkingFileLocked(ConnectorError):
    """Another process kept the working DuckDB file locked past LOCK_WAIT_SECONDS: names the file, the process and
    the fix. Typically an analyst's notebook, BI tool or DuckDB CLI opened the working file instead of the
    analysts' copy; nothing was written."""

    def __init__(self, path: str, holder: str, analyst_copy: str | None, waited: float) -> None:
        self.path, self.holder, self.analyst_copy, self.waited = path, holder, analyst_copy, waited
        use = f"read the analysts' copy {analyst_copy} instead" if analyst_copy else "read the analysts' copy instead"
        held = f"still after {waited:.0f} s" if waited else "still (an earlier step of this run waited for it)"
        super().__init__(f"the working DuckDB file {path} is locked by {holder}, {held}: close that program (a "
                         f"notebook, BI tool or DuckDB CLI that opened the working file) and {use}, then re-run; "
                         "nothing was written")

    def __reduce__(self) -> tuple[object, ...]:  # picklable across processes (the multiprocess executor)
        return (type(self), (self.path, self.holder, self.analyst_copy, self.waited))


class WarehouseResource(_CheckedResource):
    """The working warehouse of the settings (`warehouse.backend`): the DuckDB file (MKPI_DUCKDB_PATH, default
    data/marketing.duckdb; one writer at a time) or the DuckLake (docs/ducklake.md). `database` names a DuckDB file
    to use instead, whatever the settings say (tests)."""

    database: str | None = None

    def warehouse(self) -> WarehouseSettings:
        """What this resource opens: the settings' warehouse, or the `database` file."""
        if self.database:
            return WarehouseSettings(backend="duckdb", duckdb_path=self.database)
        return self.settings().warehouse

    @contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The working file, opened at once when free; when another process holds it, a warning names that process
        at once, and after LOCK_WAIT_SECONDS a WorkingFileLocked error names it with the fix."""
        with ExitStack() as stack:
            yield self._open(stack, read_only)

    def _open(self, stack: ExitStack, read_only: bool) -> duckdb.DuckDBPyConnection:
        warehouse = self.warehouse()
        path = warehouse.location
        try:
            conn = stack.enter_context(open_warehouse(warehouse, read_only=read_only, lock_timeout=0.0))
            _GAVE_UP.pop(path, None)
            return conn
        except duckdb.IOException as exc:
            holder = LockHolder.from_error(exc)
            if holder is None:
                raise
            if path in _GAVE_UP and _GAVE_UP[path] == holder.pid:  # the same process, still: no second wait
                raise self._locked(path, holder, 0.0) from exc
        log.warning(f"waiting up to {LOCK_WAIT_SECONDS:.0f} s for the working DuckDB file {path}: it is locked by "
                    f"{holder.describe()}")
        try:
            conn = stack.enter_context(open_warehouse(warehouse, read_only=read_only, lock_timeout=LOCK_WAIT_SECONDS))
        except duckdb.IOException as exc:
            still = LockHolder.from_error(exc)
            if still is None:
                raise
            _GAVE_UP[path] = still.pid
            raise self._locked(path, still, LOCK_WAIT_SECONDS) from exc
        _GAVE_UP.pop(path, None)
        return conn

    def _locked(self, path: str, holder: LockHolder, waited: float) -> WorkingFileLocked:
        analyst = None if self.database else self.settings().analyst_db
        return WorkingFileLocked(path, holder.describe(), analyst, waited)

    def load(self, batches: Iterable[Batch]) -> LoadResult:
        with self.connection() as conn:
            return load_batches(conn, batches)


class SourceResource(_CheckedResource):
    """A platform's connector for a run: the run's settings, and its secret as a real field bound to an EnvVar (the
    UI and run config only ever show the variable's name; it is resolved only for runs that read the platform)."""

    SOURCE: ClassVar[str]

    @classmethod
    def bound(cls) -> "SourceResource":
        """The resource as the code location binds it (its secret fields as EnvVars)."""
        return cls()

    def connector(self) -> Any:
        """The source's connector for the run's settings (the source protocol's `connect(settings)`)."""
        return registry.source(self.SOURCE).connector_module().connect(self.settings())


def source_resources() -> dict[str, SourceResource]:
    """One resource per registered source with a resource class here, keyed by its code (a source without one is
    read through the `settings` resource and its module's `connect(settings)`)."""
    classes = {c.SOURCE: c for c in SourceResource.__subclasses__()}
    return {code: classes[code].bound() for code in registry.codes() if code in classes}


class GA4Resource(SourceResource):
    """Google Analytics 4 Data API access: properties, endpoint and credentials from settings."""

    SOURCE = "ga4"

    def connector(self) -> Ga4Connector:
        return super().connector()


class SearchConsoleResource(SourceResource):
    """Search Console access: sites, endpoint and Google credentials from settings."""

    SOURCE = "search_console"

    def connector(self) -> SearchConsoleConnector:
        return super().connector()


class MatomoResource(SourceResource):
    """Matomo Reporting API access. The token is bound as EnvVar("MKPI_MATOMO_TOKEN"): the UI and run
    config only ever show the variable's name, and it is resolved only for runs that read Matomo."""

    SOURCE = "matomo"
    token: str

    @classmethod
    def bound(cls) -> "MatomoResource":
        return cls(token=dg.EnvVar("MKPI_MATOMO_TOKEN"))

    def connector(self) -> MatomoConnector:
        settings = self.settings().matomo
        return MatomoConnector(dataclasses.replace(settings, token=Secret(self.token)))


class GoogleAdsResource(SourceResource):
    """Google Ads API access. The developer token is bound as EnvVar("MKPI_GOOGLE_ADS_DEVELOPER_TOKEN");
    OAuth secrets are read from the environment at run time and never enter run config."""

    SOURCE = "google_ads"
    developer_token: str

    @classmethod
    def bound(cls) -> "GoogleAdsResource":
        return cls(developer_token=dg.EnvVar("MKPI_GOOGLE_ADS_DEVELOPER_TOKEN"))

    def connector(self) -> GoogleAdsConnector:
        settings = self.settings().google_ads
        return GoogleAdsConnector(dataclasses.replace(settings, developer_token=Secret(self.developer_token)))


class HubSpotResource(SourceResource):
    """HubSpot private-app access. The token is bound as EnvVar("MKPI_HUBSPOT_TOKEN") and only ever sent
    in the Authorization header."""

    SOURCE = "hubspot"
    token: str

    @classmethod
    def bound(cls) -> "HubSpotResource":
        return cls(token=dg.EnvVar("MKPI_HUBSPOT_TOKEN"))

    def connector(self) -> HubSpotConnector:
        settings = self.settings().hubspot
        return HubSpotConnector(dataclasses.replace(settings, token=Secret(self.token)))

