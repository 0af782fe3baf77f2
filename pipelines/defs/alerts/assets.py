"""The alerts digest: after every KPI rebuild and publish, find what a manager must hear about and send it once.

Business purpose (issue #23): objective status changes, KPIs off their usual pattern, stale or failing sources and
failed runs reach Slack and e-mail the same morning, in one digest per run (kpi_models/alerts.py finds and records,
kpi_models/alert_delivery.py sends). The sensors beside this file launch `alerts_job` after every refresh or publish
run, and after a failed one with the failure to report.
"""

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import dagster as dg
import duckdb

from connectors import registry
from connectors.settings import Settings
from kpi_models.alert_delivery import deliver
from kpi_models.alerts import PIPELINE, RunFailure, configured_accounts, evaluate
from kpi_models.dashboard import dashboard_path, write_settings_dashboard
from pipelines.lib.partitions import DUCKDB_POOL, SOURCE_TAG
from pipelines.lib.resources import SettingsResource, WarehouseResource
from pipelines.lib.source_status import SOURCES

ALERTS_KEY = dg.AssetKey(["alerts", "digest"])
# Run tags the sensors set: the run whose success (or failure) triggered this evaluation, and an as-of day (tests,
# replays: judge as on the morning after that day; default yesterday in the reporting time zone).
AFTER_RUN_TAG = "mkpi/alerts_after_run"
FAILED_RUN_TAG = "mkpi/alerts_failed_run"
AS_OF_TAG = "mkpi/as_of"
REPORT_SOURCES = registry.codes("report")


def _step_source(step_key: str) -> str | None:
    """The source whose raw asset a step materialises (`ga4__traffic_by_channel`, `hubspot_deals`), else None."""
    return next((s for s in SOURCES if step_key == s or step_key.startswith(f"{s}_")), None)


def _first_line(text: str | None) -> str:
    return ((text or "").strip().splitlines() or ["(no message)"])[0][:500]


def failed_run(instance: dg.DagsterInstance, run_id: str | None) -> list[RunFailure]:
    """What a failed run reports: per source, its failed steps and first error line (the connectors' errors name
    the account and never carry credentials); a run that failed before any step, its own failure message."""
    if not run_id:
        return []
    run = instance.get_run_by_id(run_id)
    if run is None:
        return []
    per_source: dict[str | None, tuple[list[str], list[str]]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = entry.dagster_event.step_failure_data if entry.dagster_event else None
        error = data.error if data is not None else None
        cause = (error.cause or error) if error is not None else None
        steps, errors = per_source.setdefault(_step_source(entry.step_key or ""), ([], []))
        steps.append(entry.step_key or "?")
        errors.append(_first_line(cause.message if cause else None))
    if not per_source:
        messages = [e.dagster_event.message for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
                    if e.dagster_event is not None]
        per_source[run.tags.get(SOURCE_TAG)] = ([], [_first_line(messages[-1] if messages else "the run failed")])
    return [RunFailure(run_id, run.job_name, source, tuple(steps), "; ".join(dict.fromkeys(errors)))
            for source, (steps, errors) in per_source.items()]


def succeeded_sources(instance: dg.DagsterInstance, run_id: str | None) -> set[str]:
    """The sources (and the pipeline's KPI and publish steps) a successful run vouches for: its failed-run alerts
    clear."""
    run = instance.get_run_by_id(run_id) if run_id else None
    if run is None:
        return set()
    tagged = run.tags.get(SOURCE_TAG)
    if tagged:
        return {tagged, PIPELINE}
    if run.job_name == "daily_refresh_job":
        return {*REPORT_SOURCES, PIPELINE}
    if run.job_name == "hubspot_refresh_job":
        return {"hubspot", PIPELINE}
    return {PIPELINE}


def as_of_day(tags: dict[str, str], timezone: object) -> date:
    """The last complete day judged: the run's `mkpi/as_of` tag, else yesterday in the reporting time zone."""
    tagged = tags.get(AS_OF_TAG)
    if tagged:
        return date.fromisoformat(tagged)
    return datetime.now(timezone).date() - timedelta(days=1)  # type: ignore[arg-type]


def _counts(values: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def refresh_page(context: dg.AssetExecutionContext, conn: duckdb.DuckDBPyConnection, loaded: Settings) -> str:
    """The dashboard the publish wrote, written again now that the day's alerts are recorded: it is built in the
    refresh or publish run, before this job judges that run, so its alert list (and the anomalous points on its
    charts) would otherwise be the previous digest's. Only a page that exists is refreshed (no publish yet: none to
    refresh). A failure to write it is a warning, not the digest's failure: the alerts are recorded and sent, and
    the page keeps its previous state until the next publish. What was done, for the run's metadata."""
    path = dashboard_path()
    if not path.exists():
        return f"not refreshed: no page at {path} yet"
    try:
        result = write_settings_dashboard(conn, loaded)
    except (duckdb.Error, OSError) as exc:
        context.log.warning(f"the dashboard at {path} was not refreshed with the new alerts: {exc}")
        return f"not refreshed: {type(exc).__name__}: {exc}"
    return f"refreshed with the alerts: {result.path} ({result.bytes:,} bytes)"


@dg.asset(
    key=ALERTS_KEY,
    deps=[dg.AssetKey(["kpi", "kpi_vs_objective"]), dg.AssetKey(["publish", "analyst_copy"])],
    group_name="alerts",
    kinds={"python", "duckdb"},
    pool=DUCKDB_POOL,
    description="Objective status changes, anomalies against each KPI's usual weekday pattern, stale or failing "
    "sources (meta.source_status, data lag) and failed runs, recorded in kpi.alerts (never twice until cleared) "
    "and sent as one digest per run to the configured channels (Slack webhook, SMTP, a file); the dashboard page, "
    "if one was published, is written again so its alert list is the digest's.",
)
def alerts_digest(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
                  ) -> dg.MaterializeResult:
    loaded = settings.load()
    if not loaded.alerts.enabled:
        return dg.MaterializeResult(metadata={"enabled": False})
    tags = dict(context.run.tags)
    as_of = as_of_day(tags, loaded.tz)
    failures = failed_run(context.instance, tags.get(FAILED_RUN_TAG))
    succeeded = succeeded_sources(context.instance, tags.get(AFTER_RUN_TAG))
    with warehouse.connection() as conn:
        evaluation = evaluate(conn, loaded.alerts, as_of, min_denominators=loaded.min_denominators,
                              configured=configured_accounts(loaded), failures=failures, succeeded_sources=succeeded)
        report = deliver(conn, loaded.alerts, evaluation.created_at, as_of)
        page = refresh_page(context, conn, loaded)
    new = [a.finding for a in evaluation.new]
    metadata = {
        "dashboard": page,
        "as_of": as_of.isoformat(), "new_alerts": len(new), "cleared": evaluation.cleared,
        "still_open": evaluation.still_open, "judged_points": evaluation.judged_points,
        "anomalous_points": evaluation.anomalous_points,
        "new_by_condition": dg.MetadataValue.json(_counts([f.condition for f in new])),
        "new_by_severity": dg.MetadataValue.json(_counts([f.severity for f in new])),
        "sent": dg.MetadataValue.json(report.sent),
    }
    for finding in new:
        context.log.info(f"alert ({finding.severity}, {finding.condition}): {finding.message}")
    if report.failed:
        raise dg.Failure(description="alerts recorded but not delivered to " + "; ".join(report.failed.values())
                         + " (they are sent with the next digest)", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)
