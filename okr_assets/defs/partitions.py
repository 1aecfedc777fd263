"""Partitions shared by the table assets, their checks, sensors and schedule."""


import datetime as dt

from dagster import DailyPartitionsDefinition, TimeWindowPartitionsDefinition

from okr_assets import settings
from okr_assets.lib.quarters import quarter_start

FIRST_PARTITION: dt.date = settings.first_partition()

# end_offset=1 includes today, so a check-in made this morning is processed today, not tomorrow.
daily_partitions = DailyPartitionsDefinition(
    start_date=FIRST_PARTITION.isoformat(), end_offset=1, timezone="UTC"
)

# okr_curated is keyed by the calendar quarter of cycle_start ("2025-07-01" = cycles starting in
# 2025-Q3). It starts one quarter before the first daily partition, because check-ins dated from
# FIRST_PARTITION on may belong to a cycle that began the quarter before; end_offset=2 covers a
# cycle starting next quarter that already has early check-ins.
_CURATED_START = quarter_start(FIRST_PARTITION - dt.timedelta(days=1))
quarterly_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1,4,7,10 *",
    start=_CURATED_START.isoformat(),
    fmt="%Y-%m-%d",
    end_offset=2,
    timezone="UTC",
)


def contiguous_ranges(keys: list[str], all_keys: list[str]) -> list[tuple[str, str]]:
    """Group partition keys into runs of consecutive keys of ``all_keys`` (inclusive bounds)."""
    position = {k: i for i, k in enumerate(all_keys)}
    ordered = sorted({k for k in keys if k in position}, key=position.__getitem__)
    ranges: list[tuple[str, str]] = []
    for key in ordered:
        if ranges and position[key] == position[ranges[-1][1]] + 1:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
    return ranges
