"""One bad account must not stop the others: what a report asset does after loading many accounts.

Business purpose: a group with 50 GA4 properties cannot have the whole morning's traffic numbers wait for
one property whose access was revoked. The connectors fetch accounts in parallel and record each failed
account in an `AccountLog` instead of raising (connectors/parallel.py); the asset loads every good account
(each account's window replaced, all in the one transaction of the load), then calls
`fail_on_failed_accounts`, which fails the step naming each failed account and its error, with the
per-account row counts and failures as metadata of the failure. The failed accounts' old rows are left as
they were, and a re-run (or the next day's run) reads them again. See docs/configuration.md, "Many accounts".
"""


from typing import Any

import dagster as dg

from connectors.errors import RetriesExhausted
from connectors.parallel import AccountLog


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


def fail_on_failed_accounts(accounts: AccountLog) -> None:
    """After the good accounts were loaded: fail the step naming every failed account, or do nothing.

    When every failure was transient (retries exhausted on 429/5xx), raise `RetriesExhausted`, so that
    `retry_transient_failures` asks Dagster to re-run the step later, as for a single account; otherwise
    (a revoked permission, a deleted property) fail now with `dg.Failure`, whose metadata carries the
    per-account row counts and errors: a person has to act, retrying will not help.
    """
    error = accounts.error()
    if error is None:
        return
    if error.retryable:
        raise RetriesExhausted(error.source, ", ".join(error.failures), str(error)) from error
    raise dg.Failure(description=str(error), metadata=accounts_metadata(accounts))
