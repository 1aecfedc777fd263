"""Which partition a landed row belongs to, decided once at landing time.

Every row in ``okr_raw`` gets a ``partition_date``: the UTC date of its check-in when that is a
usable partition, otherwise the UTC date it was ingested. Rows with a missing, unparseable,
too-early or future ``checkin_at`` are therefore still owned by exactly one ``okr_processed``
partition, which rejects them with their reason; nothing falls between partitions.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from okr_assets.lib.contract import FUTURE_TOLERANCE_SECONDS, RFC3339_PATTERN


def _text(series: pd.Series) -> pd.Series:
    stripped = series.astype("string").str.strip()
    return stripped.mask(stripped == "")


def parse_timestamp(series: pd.Series) -> pd.Series:
    """The contract's checkin_at grammar (``RFC3339_PATTERN``) as UTC timestamps, NaT otherwise.
    The engine types the same text the same way (``okr_assets.lib.validation.parse_timestamp``)
    for every row a partition can be routed by: one that is not before the first partition and not
    in the future."""
    text = _text(series)
    matched = text.str.fullmatch(RFC3339_PATTERN, na=False)
    return pd.to_datetime(text.where(matched).str.upper(), utc=True, format="ISO8601", errors="coerce")


def parse_date(series: pd.Series) -> pd.Series:
    return pd.to_datetime(_text(series), format="%Y-%m-%d", errors="coerce")


def route_partition_dates(
    checkin_at: pd.Series, ingested_at: pd.Timestamp, first_partition: dt.date
) -> pd.Series:
    """The partition date (midnight ``datetime64``) for each row's raw ``checkin_at`` text."""
    if checkin_at.dtype == object:  # landing's text columns: parsed faster as Arrow strings
        checkin_at = checkin_at.astype("string[pyarrow]")
    parsed = parse_timestamp(checkin_at)
    usable = (
        parsed.notna()
        & (parsed.dt.tz_convert(None).dt.normalize() >= pd.Timestamp(first_partition))
        & (parsed <= ingested_at + pd.Timedelta(seconds=FUTURE_TOLERANCE_SECONDS))
    )
    day = parsed.dt.tz_convert(None).dt.normalize().where(usable, ingested_at.tz_convert(None).normalize())
    return day


def quarter_starts(days: pd.Series) -> pd.Series:
    """Vectorised ``okr_assets.lib.quarters.quarter_start`` for a datetime64 series."""
    return days.dt.to_period("Q").dt.start_time


def cycle_quarters(cycle_start: pd.Series) -> set[dt.date]:
    """Curated partitions touched by rows with these raw ``cycle_start`` texts."""
    parsed = parse_date(cycle_start).dropna()
    return {ts.date() for ts in quarter_starts(parsed).unique()}
