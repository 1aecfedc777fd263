"""okr_refresh_schedule: the six-hourly safety net the replaced ETL had."""


import datetime as dt

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from okr_assets.defs.automation.sensors import range_request
from okr_assets.defs.tables.assets import OKR_PROCESSED, OKR_REJECTS


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
    request = range_request([OKR_PROCESSED, OKR_REJECTS], start, today.isoformat(),
                            run_key=f"schedule:{context.scheduled_execution_time.isoformat()}",
                            reason="okr_refresh_schedule")
    return request
