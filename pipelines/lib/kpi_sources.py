"""One source's KPI rows must not hold the others back: what a KPI asset does after rebuilding source by source.

Business purpose: a HubSpot column that changed type, or a GA4 raw table of another shape, must stop that
source's KPI rows only. The runner rebuilds each source's rows in a transaction of its own
(kpi_models/runner.py); a KPI asset then:
- every source it rebuilds failed: the step fails (nothing new to publish);
- some failed: the step succeeds with the others, so they go on to the objectives, the analysts' copy and the
  dashboard in the same run, and its `failed_sources` metadata names the others (their rows are the last good
  ones); the non-blocking check `every_source_rebuilt` on the same asset then fails, naming each, and fails the
  run.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from kpi_models.runner import RebuildResult
from pipelines.lib.accounts import account_outcome

CHECK_NAME = "every_source_rebuilt"


def sources_metadata(result: RebuildResult) -> dict[str, Any]:
    return {"sources": ", ".join(result.sources), "failed_sources": dg.MetadataValue.json(dict(result.failed))}


def settle_sources(context: dg.AssetExecutionContext, result: RebuildResult) -> None:
    """Fail the step when every source failed; otherwise log the failed ones and go on with the others."""
    if not result.failed:
        return
    described = "; ".join(f"{source}: {error}" for source, error in result.failed.items())
    if not set(result.sources) - set(result.failed):
        raise dg.Failure(description=f"{result.table}: no source could be rebuilt ({described}); every row is "
                         "kept as it was", metadata=sources_metadata(result))
    context.log.error(f"{result.table}: {described}. Those sources keep their last good rows; the others were "
                      f"rebuilt and go on downstream; the check {CHECK_NAME} then fails the run.")


def build_every_source_rebuilt_check(asset_key: dg.AssetKey) -> dg.AssetChecksDefinition:
    """A non-blocking check that fails, and fails the run, when the asset's run left a source's rows as they were."""

    @dg.asset_check(
        asset=asset_key,
        name=CHECK_NAME,
        blocking=False,
        description="Every source's rows of this KPI table were rebuilt by the run. When one source's part fails "
        "(its raw table changed shape, a value does not cast), the other sources are rebuilt and published; this "
        "check then fails the run, naming the source and its error.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        outcome = account_outcome(context.instance, context.run.run_id, asset_key, "failed_sources")
        if outcome is None:
            yield dg.AssetCheckResult(passed=False, description="never materialised")
            return
        if not outcome.failed:
            yield dg.AssetCheckResult(passed=True, metadata={"failed_sources": 0})
            return
        description = (f"{asset_key.to_user_string()}: {len(outcome.failed)} source(s) kept their last good rows: "
                       + "; ".join(f"{s}: {e}" for s, e in outcome.failed.items()))
        metadata = {"failed_sources": dg.MetadataValue.json(outcome.failed)}
        yield dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, description=description,
                                  metadata=metadata)
        raise dg.Failure(description=description, metadata=metadata)

    return _check
