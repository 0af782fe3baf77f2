"""One Dagster Component for a report source's raw assets, configured per source by `pipelines/defs/<code>/defs.yaml`.

Business purpose: every report platform (GA4, Search Console, Matomo, Google Ads, and the next one) is loaded the
same way, so a fix to that way is made once: the materialisation's date window -> the connector -> every account
read, a failed one recorded instead of raised -> transient failures re-run by Dagster -> one atomic load ->
settle the accounts (fail, re-run, or succeed naming the failed ones) -> the same metadata keys for every source.
What differs per platform is a small hook class (`SourceHooks`, e.g. pipelines/defs/ga4/hooks.py: GA4's answer
quality rows and quota); what people write about a source (descriptions, owners, column notes, row rules) is YAML.

A `defs.yaml`:

    type: pipelines.components.source_assets.SourceAssets
    attributes:
      source: ga4                      # the registry code (connectors/registry.py): group, freshness, label
      hooks: pipelines.defs.ga4.hooks:Ga4Hooks   # optional, "module:Class"; default: the registry protocol
      step: per_stream                 # per_stream: one asset (one step) per raw table; one_step: one multi-asset
      step_name: matomo_reports        # one_step only: the step's name
      owners: [team:web-analytics]     # Dagster owners: team:<name> or an e-mail address
      account_check_on: [visits_summary]  # tables carrying every_account_loaded (default: every step's first)
      streams:                         # per raw table (the part after the schema), all optional
        traffic_by_channel:
          description: "..."
          columns: {sessions: "..."}   # column descriptions, shown in the UI's column schema
      row_checks:                      # blocking rule checks (pipelines/lib/checks.py)
        - {name: ..., table: ga4.traffic_by_channel, violation: "<SQL predicate>", description: "...",
           blocking: true}

A registered report source with no folder under pipelines/defs gets this component with every default
(`source_component`), so a new platform appears in the definitions through the registry alone.
"""

import importlib
import inspect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from connectors import registry
from connectors.batches import Batch, Stream, Window
from connectors.parallel import AccountLog
from connectors.settings import Settings, load_settings
from connectors.yaml_text import safe_load
from pipelines.lib.accounts import accounts_metadata, build_every_account_loaded_check, settle_accounts
from pipelines.lib.checks import build_row_rule_check
from pipelines.lib.metadata import column_schema_from_arrow, range_metadata, table_metadata
from pipelines.lib.partitions import DUCKDB_POOL, daily_partitions, retry_transient_failures, window_from_context
from pipelines.lib.resources import source_resources

DEFS_DIR = Path(__file__).resolve().parent.parent / "defs"
COMPONENT_TYPE = "pipelines.components.source_assets.SourceAssets"
# Every report source's raw asset carries this tag: the daily refresh job selects them by it, whatever the sources.
REPORT_SOURCE_TAG = ("mkpi/source_kind", "report")


class SourceHooks:
    """What one platform does its own way; the defaults follow the source protocol of connectors/source.py
    (`connect(settings)`, `STREAMS`, `fetch(stream, window, accounts=...)`). Subclass per source and override only
    what differs."""

    # the metadata key listing the accounts read ("properties", "sites", ...)
    accounts_key: str = "account_ids"

    def __init__(self, spec: registry.SourceSpec) -> None:
        self.spec = spec

    @property
    def resource_key(self) -> str | None:
        """The Dagster resource that builds the connector: the source's own (pipelines/lib/resources.py, bound under
        its code, with its secret as an EnvVar) when it has one; None: the settings resource and the connector
        module's `connect(settings)`."""
        return self.spec.code if self.spec.code in source_resources() else None

    def streams(self) -> tuple[Stream, ...]:
        """The source's raw tables, in load order: one asset each."""
        return tuple(self.spec.connector_module().STREAMS)

    def connector(self, resources: Any) -> Any:
        """The connector for this run, from its resource or from the settings."""
        if self.resource_key is not None:
            return getattr(resources, self.resource_key).connector()
        return self.spec.connector_module().connect(resources.settings.load())

    def account_ids(self, connector: Any) -> list[str] | None:
        """The configured accounts, checked before anything is read (None: those the fetch reports)."""
        check = getattr(connector, "check", None)
        return list(check()) if callable(check) else None

    def batches(self, connector: Any, streams: Sequence[Stream], window: Window, accounts: AccountLog
                ) -> Iterable[Batch]:
        """Every batch of these streams over the window; a failed account is recorded in `accounts`."""
        for stream in streams:
            yield from connector.fetch(stream, window, accounts=accounts)

    def definition_metadata(self, stream: Stream) -> dict[str, Any]:
        """Extra metadata on the asset's definition (shown before any run)."""
        return {}

    def run_metadata(self, connector: Any, stream: Stream) -> dict[str, Any]:
        """Extra metadata on each materialisation (what the platform said about this answer)."""
        return {}


class StreamDoc(dg.Model, dg.Resolvable):
    """What people write about one raw table."""

    description: str | None = None
    columns: dict[str, str] = {}


class RowRule(dg.Model, dg.Resolvable):
    """A rule no raw row may break (a blocking check by default): `violation` is the SQL predicate of a bad row."""

    name: str
    table: str
    violation: str
    description: str
    blocking: bool = True


class SourceAssets(dg.Component, dg.Resolvable, dg.Model):
    """A report source's raw assets, their account and row checks, from the registry entry and this YAML."""

    source: str
    hooks: str | None = None
    step: Literal["per_stream", "one_step"] = "per_stream"
    step_name: str | None = None
    owners: list[str] = []
    account_check_on: list[str] | None = None
    streams: dict[str, StreamDoc] = {}
    row_checks: list[RowRule] = []

    def spec(self) -> registry.SourceSpec:
        return registry.source(self.source)

    def source_hooks(self) -> SourceHooks:
        """The source's hook object (`hooks: module:Class`), else the protocol defaults."""
        if not self.hooks:
            return SourceHooks(self.spec())
        module, _, name = self.hooks.partition(":")
        return getattr(importlib.import_module(module), name)(self.spec())

    def raw_streams(self) -> tuple[Stream, ...]:
        """The raw tables this component makes assets of; a YAML entry for a table the source lacks is refused."""
        streams = self.source_hooks().streams()
        unknown = set(self.streams) - {_name(s) for s in streams}
        if unknown:
            raise ValueError(f"{self.source}: defs.yaml describes unknown streams {sorted(unknown)}; the source's "
                             f"tables are {[s.table for s in streams]}")
        return streams

    def asset_keys(self) -> list[dg.AssetKey]:
        return [_key(s) for s in self.raw_streams()]

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return self.build(load_settings())

    def build(self, settings: Settings) -> dg.Definitions:
        """The assets and checks, partitioned from the configured start date (settings read now, at build time)."""
        hooks, spec = self.source_hooks(), self.spec()
        streams = self.raw_streams()
        partitions = daily_partitions(settings)
        columns = _catalogue_column_notes(spec)
        groups = [[s] for s in streams] if self.step == "per_stream" else [list(streams)]
        assets = [self._step(hooks, group, partitions, columns) for group in groups]
        checks = [build_row_rule_check(dg.AssetKey(r.table.split(".")), name=r.name, table=r.table,
                                       violation=r.violation, description=r.description, blocking=r.blocking)
                  for r in self.row_checks]
        on = self.account_check_on or [_name(group[0]) for group in groups]
        checks += [build_every_account_loaded_check(dg.AssetKey([spec.code, name]), spec.code) for name in on]
        return dg.Definitions(assets=dg.with_source_code_references(assets), asset_checks=checks)

    def _asset_spec(self, hooks: SourceHooks, stream: Stream, columns: Mapping[str, Mapping[str, str]]
                    ) -> dg.AssetSpec:
        spec, doc = self.spec(), self.streams.get(_name(stream), StreamDoc())
        return dg.AssetSpec(
            _key(stream),
            group_name=spec.code,
            description=doc.description,
            kinds={"python", "duckdb"},
            tags=dict([REPORT_SOURCE_TAG]),
            owners=list(self.owners),
            freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(days=spec.stale_after_days)),
            metadata={"dagster/table_name": stream.table, "primary_key": ", ".join(stream.key),
                      **hooks.definition_metadata(stream), **_hooks_reference(hooks),
                      "dagster/column_schema": column_schema_from_arrow(stream.schema,
                                                                         self._columns(stream, columns))},
        )

    def _columns(self, stream: Stream, catalogue: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """Column descriptions: the catalogue's (kpi_models/catalogue.yaml), then this YAML's (which win)."""
        return {**catalogue.get(stream.table, {}), **self.streams.get(_name(stream), StreamDoc()).columns}

    def _step(self, hooks: SourceHooks, streams: list[Stream], partitions: dg.PartitionsDefinition,
              columns: Mapping[str, Mapping[str, str]]) -> dg.AssetsDefinition:
        """One step writing these streams in one load; a backfill is one run (one request per account)."""
        resource = hooks.resource_key or "settings"
        notes = {s.table: self._columns(s, columns) for s in streams}
        name = self.step_name if self.step == "one_step" and self.step_name else "__".join(_key(streams[0]).path)

        @dg.multi_asset(
            specs=[self._asset_spec(hooks, s, columns) for s in streams],
            name=name,
            partitions_def=partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            pool=DUCKDB_POOL,
            required_resource_keys={"warehouse", resource},
        )
        def _load(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
            yield from load_streams(context, hooks, streams, notes)

        return _load


def load_streams(context: dg.AssetExecutionContext, hooks: SourceHooks, streams: Sequence[Stream],
                 notes: Mapping[str, Mapping[str, str]]) -> Iterator[dg.MaterializeResult]:
    """The one body of a report source's step: window -> connector -> accounts -> retries -> load -> settle ->
    metadata. Every good account is loaded; a failed one is named and fails the run (pipelines/lib/accounts.py)."""
    spec = hooks.spec
    window = window_from_context(context)
    connector = hooks.connector(context.resources)
    ids = hooks.account_ids(connector)
    what = f"{spec.label} {_name(streams[0])}" if len(streams) == 1 else spec.label
    context.log.info(f"{what}: {hooks.accounts_key} {ids if ids is not None else '(as configured)'}, window {window}")
    accounts = AccountLog(spec.code)
    with retry_transient_failures():
        result = context.resources.warehouse.load(hooks.batches(connector, streams, window, accounts))
        settle_accounts(context, accounts)
    listed = ", ".join(ids if ids is not None else accounts.accounts)
    stats = connector.stats.as_metadata() if hasattr(connector, "stats") else {}
    for stream in streams:
        rows = result.rows_by_table.get(stream.table, 0)
        extra = hooks.run_metadata(connector, stream)
        context.log.info(f"{spec.label} {_name(stream)}: {rows} rows{'' if not stats else f', {stats}'}")
        # one dict, later keys winning: a hook's metadata may name a key the connector's counters also have
        # ("requests"), or the accounts' ("accounts"), which as keyword arguments would fail the step
        extra = {hooks.accounts_key: listed, **extra, **stats, **accounts_metadata(accounts)}
        metadata = table_metadata(stream.table, rows, window,
                                  column_schema_from_arrow(stream.schema, notes.get(stream.table)), **extra)
        # the column schema on the range's last day only (pipelines/lib/metadata.py)
        yield dg.MaterializeResult(asset_key=_key(stream), metadata=range_metadata(context, metadata, _key(stream)))


def _hooks_reference(hooks: SourceHooks) -> dict[str, Any]:
    """The source's own hook class as a code reference (beside the shared step's and the defs.yaml's), when it has
    one: what this platform does its own way is one click away in the UI."""
    if type(hooks) is SourceHooks:
        return {}
    _, first = inspect.getsourcelines(type(hooks))
    reference = dg.LocalFileCodeReference(file_path=inspect.getsourcefile(type(hooks)) or "", line_number=first,
                                          label=f"{hooks.spec.label}'s hooks ({type(hooks).__name__})")
    return {"dagster/code_references": dg.CodeReferencesMetadataValue(code_references=[reference])}


def _name(stream: Stream) -> str:
    return stream.table.split(".", 1)[1]


def _key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(stream.table.split("."))


def _catalogue_column_notes(spec: registry.SourceSpec) -> dict[str, dict[str, str]]:
    """From kpi_models/catalogue.yaml: the raw column whose rows mean the source reported a day, per raw table, and
    the KPI relation that counts on it (`relations.<name>.raw.<source>`)."""
    from kpi_models.catalogue import load_catalogue

    notes: dict[str, dict[str, str]] = {}
    for relation in load_catalogue().relations.values():
        presence = (relation.raw or {}).get(spec.code)
        if presence is None or not presence.date.isidentifier():
            continue
        where = f" (rows where {presence.where})" if presence.where else ""
        notes.setdefault(presence.table, {})[presence.date] = (
            f"The reporting day. A day with rows here{where} is a day {spec.label} reported: kpi.kpi_daily then "
            f"expects every {spec.label} KPI of {relation.table or relation.name} for it (catalogue relation "
            f"{relation.name}).")
    return notes


@cache
def _yaml_attributes(code: str) -> dict[str, Any] | None:
    path = DEFS_DIR / code / "defs.yaml"
    if not path.exists():
        return None
    document = safe_load(path.read_text(encoding="utf-8")) or {}
    if document.get("type") != COMPONENT_TYPE:
        return None
    return dict(document.get("attributes") or {})


def has_own_definitions(code: str) -> bool:
    """True when pipelines/defs/<code>/ exists (its defs.yaml or Python defines the source's assets)."""
    return (DEFS_DIR / code).is_dir()


def source_component(code: str) -> SourceAssets:
    """The component of a report source as its defs.yaml configures it, or with every default when it has none."""
    attributes = _yaml_attributes(code)
    if attributes is None:
        return SourceAssets(source=code)
    return SourceAssets.resolve_from_dict(attributes)


def source_defs(code: str, settings: Settings | None = None) -> dg.Definitions:
    """A report source's assets and checks, built now (tests and the CLI materialise them directly)."""
    return source_component(code).build(settings or load_settings())


def source_asset(code: str, table: str) -> dg.AssetsDefinition:
    """The assets definition (the step) that writes `table` ("ga4.cart_funnel_daily")."""
    key = dg.AssetKey(table.split("."))
    for asset in source_defs(code).assets or ():
        if isinstance(asset, dg.AssetsDefinition) and key in asset.keys:
            return asset
    raise KeyError(f"{code} has no asset {table}")


def source_check(code: str, name: str) -> dg.AssetChecksDefinition:
    """One of a source's checks, by name (the first of that name: every_account_loaded is on several assets)."""
    for check in source_defs(code).asset_checks or ():
        if isinstance(check, dg.AssetChecksDefinition) and any(k.name == name for k in check.check_keys):
            return check
    raise KeyError(f"{code} has no check named {name!r}")


def registry_only_defs(settings: Settings | None = None) -> dg.Definitions:
    """The report sources registered without a folder under pipelines/defs (a new platform added through the
    registry alone), each with the component's defaults."""
    missing = [code for code in registry.codes("report") if not has_own_definitions(code)]
    if not missing:
        return dg.Definitions()
    settings = settings or load_settings()
    return dg.Definitions.merge(*[SourceAssets(source=code).build(settings) for code in missing])
