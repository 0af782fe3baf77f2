"""One bad account must not hold the others back: what a report asset does after loading many accounts.

Business purpose: a group with 50 GA4 properties cannot have the whole morning's traffic numbers wait for
one property whose access was revoked. The connectors fetch accounts in parallel and record each failed
account in an `AccountLog` instead of raising (connectors/parallel.py); the asset loads every good account
(each account's window replaced, all in the one transaction of the load), then calls `settle_accounts`:

- every account failed: the step fails (nothing was loaded, there is nothing to isolate);
- some failed, and only for transient reasons (429/5xx after all retries): the step asks Dagster to re-run
  it, as for a single account, until its last attempt;
- otherwise the step succeeds with the good accounts, so the KPI tables downstream are rebuilt for them in
  the same run, and its `failed_accounts` metadata names the others. The non-blocking check
  `every_account_loaded` on the same asset then fails, naming each failed account and its error, and fails
  the run: the run is red, the 49 good properties' numbers are current.

The failed accounts' rows are left as they were; a re-run of the window (or the next day's run) reads them
again. See docs/configuration.md, "Many accounts".
"""


from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from connectors.errors import RetriesExhausted
from connectors.parallel import AccountLog
from pipelines.lib.partitions import STEP_RERUNS

CHECK_NAME = "every_account_loaded"
# How many of an asset's materialisations to read at a time when looking for this run's (there is one per
# partition of a range run, and a concurrent run may have written some of them). The first page is small: the
# first materialisation after the run's creation is nearly always the run's own, and each record read is
# deserialised whole (its metadata: column schema, accounts), so a 365-day run's check reads one, not 365.
_FIRST_PAGE = 4
_PAGE = 500


def accounts_metadata(accounts: AccountLog) -> dict[str, Any]:
    """Per-account row counts and failures, in configured account order, as Dagster metadata."""
    raw = accounts.as_metadata()
    return {
        "accounts": raw["accounts"],
        "accounts_failed": raw["accounts_failed"],
        "rows_by_account": dg.MetadataValue.json(raw["rows_by_account"]),
        "failed_accounts": dg.MetadataValue.json(raw["failed_accounts"]),
        "max_parallel_accounts": raw["max_parallel_accounts"],
    }


def settle_accounts(context: dg.AssetExecutionContext, accounts: AccountLog,
                    reruns: int = STEP_RERUNS) -> None:
    """After the good accounts were loaded: fail the step, ask for a re-run, or let it succeed (see above).

    `RetriesExhausted` is turned into Dagster's `RetryRequested` by `retry_transient_failures`; `reruns` is its
    `max_retries`, so that the last attempt settles instead of asking for a re-run Dagster would refuse.
    """
    error = accounts.error()
    if error is None:
        return
    nothing_loaded = len(error.failures) >= len(accounts.accounts)
    if error.retryable and (nothing_loaded or context.retry_number < reruns):
        raise RetriesExhausted(error.source, ", ".join(error.failures), str(error)) from error
    if nothing_loaded:
        raise dg.Failure(description=str(error), metadata=accounts_metadata(accounts))
    context.log.error(f"{error} The step goes on with the loaded ones, so the KPI tables downstream are rebuilt "
                      f"with them; the check {CHECK_NAME} then fails the run, naming the failed accounts.")


@dataclass(frozen=True)
class AccountOutcome:
    """What a run's materialisation of a report asset recorded about its accounts."""

    failed: dict[str, str]
    window_start: str | None
    window_end: str | None

    def rerun_hint(self, source: str) -> str:
        """How to reload the window once the accounts are fixed (every account, idempotently)."""
        if not (self.window_start and self.window_end):
            return "Once fixed, re-execute this run."
        return (f"Once fixed, reload the window: mkpi backfill --source {source} --start {self.window_start} "
                f"--end {self.window_end} (or re-execute this run).")


def _outcome(materialization: dg.AssetMaterialization, metadata_key: str = "failed_accounts") -> AccountOutcome:
    metadata = materialization.metadata
    failed = metadata.get(metadata_key)
    start, end = metadata.get("window_start"), metadata.get("window_end")
    named = dict(failed.value) if isinstance(failed, dg.JsonMetadataValue) and failed.value else {}
    return AccountOutcome(failed=named,
                          window_start=str(start.value) if start is not None else None,
                          window_end=str(end.value) if end is not None else None)


def account_outcome(instance: dg.DagsterInstance, run_id: str, asset_key: dg.AssetKey,
                    metadata_key: str = "failed_accounts") -> AccountOutcome | None:
    """This run's materialisation of the asset (what failed, under `metadata_key`, and the window); when the run
    has none (the check launched on its own), the asset's latest; None if it was never materialised."""
    run = instance.get_run_record_by_id(run_id)
    after = run.create_timestamp.timestamp() if run is not None else None
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, after_timestamp=after),
            limit=_PAGE if cursor else _FIRST_PAGE, cursor=cursor, ascending=True)
        for record in page.records:
            if record.run_id == run_id and record.asset_materialization is not None:
                return _outcome(record.asset_materialization, metadata_key)
        if not page.has_more:
            break
        cursor = page.cursor
    latest = instance.get_latest_materialization_event(asset_key)
    materialization = latest.asset_materialization if latest is not None else None
    return _outcome(materialization, metadata_key) if materialization is not None else None


def build_every_account_loaded_check(asset: dg.AssetsDefinition | dg.AssetKey, source: str
                                     ) -> dg.AssetChecksDefinition:
    """A non-blocking check that fails, and fails the run, when the asset's run left accounts out.

    Non-blocking so that the KPI tables are still rebuilt for the accounts that were loaded; failing its
    step (after recording the failed evaluation) so that the run is red and names who to fix."""
    key = asset if isinstance(asset, dg.AssetKey) else asset.key

    @dg.asset_check(
        asset=asset,
        name=CHECK_NAME,
        blocking=False,
        description=f"Every configured {source} account was read and loaded by the run. When some failed, the "
        "others are loaded and their KPIs rebuilt; this check then fails the run, naming each failed account "
        "and its error.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        outcome = account_outcome(context.instance, context.run.run_id, key)
        if outcome is None:
            yield dg.AssetCheckResult(passed=False, description="never materialised: no account was loaded yet")
            return
        failed = outcome.failed
        if not failed:
            yield dg.AssetCheckResult(passed=True, metadata={"failed_accounts": 0})
            return
        description = (f"{source}: {len(failed)} account(s) failed ({', '.join(failed)}); the others were loaded "
                       "and go on to the KPI tables downstream. " + "; ".join(f"{a}: {m}" for a, m in failed.items())
                       + ". " + outcome.rerun_hint(source))
        metadata = {"failed_accounts": dg.MetadataValue.json(failed)}
        yield dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, description=description,
                                  metadata=metadata)
        raise dg.Failure(description=description, metadata=metadata)

    return _check
