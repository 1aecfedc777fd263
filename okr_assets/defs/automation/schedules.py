"""okr_refresh_schedule: the six-hourly safety net the replaced ETL had."""


import datetime as dt

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from okr_assets.defs.automation.sensors import OKR_CURATED, range_request
from okr_assets.defs.tables.assets import OKR_PROCESSED, OKR_REJECTS
from okr_assets.lib.quarters import quarter_start


@schedule(
    name="okr_refresh_schedule",
    cron_schedule="0 */6 * * *",
    execution_timezone="UTC",
    target=[OKR_PROCESSED, OKR_REJECTS],
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every 6 hours, re-processes yesterday's and today's okr_processed partitions; "
                "okr_refresh_sensor then refreshes the okr_curated quarters they feed.",
)
def okr_refresh_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    today = context.scheduled_execution_time.astimezone(dt.UTC).date()
    start = (today - dt.timedelta(days=1)).isoformat()
    return range_request([OKR_PROCESSED, OKR_REJECTS], start, today.isoformat(),
                         run_key=f"schedule:{context.scheduled_execution_time.isoformat()}",
                         reason="okr_refresh_schedule")


@schedule(
    name="okr_curated_schedule",
    cron_schedule="30 */6 * * *",
    execution_timezone="UTC",
    target=[OKR_CURATED],
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every 6 hours (half an hour after okr_refresh_schedule), re-curates the current "
                "quarter, and okr_refresh_sensor then its features: even on days without check-ins, "
                "days_since_checkin moves with the clock and the freshness policies stay met.",
)
def okr_curated_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    quarter = quarter_start(context.scheduled_execution_time.astimezone(dt.UTC).date()).isoformat()
    return range_request([OKR_CURATED], quarter, quarter,
                         run_key=f"schedule:{context.scheduled_execution_time.isoformat()}:curated",
                         reason="okr_curated_schedule: current quarter")
