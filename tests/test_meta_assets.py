"""Facebook and Instagram in the Dagster code location (pipelines/defs/facebook, pipelines/defs/instagram): one step per
source writing its three raw tables, the account check and row checks, and materialisation metadata the shared step
can build (no run here: the secrets battery runs the daily refresh with them).

The expected assets, checks and metadata keys are written out by hand."""

from __future__ import annotations

import importlib
from datetime import date

import dagster as dg
import pytest

from connectors import registry
from connectors.batches import Window
from connectors.parallel import AccountLog
from connectors.settings import load_settings
from pipelines.definitions import build_definitions
from pipelines.lib.accounts import accounts_metadata
from pipelines.lib.metadata import column_schema_from_arrow, table_metadata
from sandbox.meta_server import MetaServer
from sandbox.world import World

TABLES = ("account_daily", "account_period_reach", "posts")


@pytest.fixture(scope="module")
def defs():
    return build_definitions()


@pytest.mark.parametrize(("code", "step"), [("facebook", "facebook_insights"), ("instagram", "instagram_insights")])
def test_three_raw_assets_in_one_step_with_their_checks(defs, code, step):
    graph = defs.resolve_asset_graph()
    keys = [dg.AssetKey([code, table]) for table in TABLES]
    nodes = [graph.get(key) for key in keys]
    assert {node.group_name for node in nodes} == {code}
    assert all(node.partitions_def is not None for node in nodes)
    assert {defs.get_assets_def(key).node_def.name for key in keys} == {step}
    assert dg.AssetCheckKey(keys[0], "every_account_loaded") in graph.asset_check_keys
    assert dg.AssetCheckKey(keys[0], f"{code}_counts_consistent") in graph.asset_check_keys
    assert registry.source(code).kind == "report" and registry.source(code).reread_days == 3


@pytest.mark.parametrize("code", ["facebook", "instagram"])
def test_the_steps_metadata_builds_without_a_clash(code, tmp_path):
    """What the shared step puts on each materialisation (its accounts key, the hooks' run metadata and the account
    log's own keys) is one mapping: no key given twice."""
    hooks_module = importlib.import_module(f"pipelines.defs.{code}.hooks")
    hooks = getattr(hooks_module, f"{code.capitalize()}Hooks")(registry.source(code))
    path = tmp_path / "mkpi.yaml"
    path.write_text("{}\n", encoding="utf-8")
    with MetaServer(World(today=date(2026, 3, 10))) as server:
        settings = load_settings(path, environ=server.env())
        connector = registry.source(code).connector_module().connect(settings)
        log = AccountLog(code)
        window = Window(date(2026, 3, 8), date(2026, 3, 9))
        batches = list(hooks.batches(connector, hooks.streams(), window, log))
        assert {b.stream.table for b in batches} == {f"{code}.{t}" for t in TABLES}
        for stream in hooks.streams():
            metadata = table_metadata(stream.table, 0, window, column_schema_from_arrow(stream.schema, None),
                                      **{hooks.accounts_key: hooks.account_ids(connector)},
                                      **hooks.run_metadata(connector, stream), **accounts_metadata(log))
            assert metadata["graph_api_version"] == "v26.0"
