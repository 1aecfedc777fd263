"""Calendar quarters: the okr_curated partition keys. Plain ``datetime``, no pandas, so the
partition definitions can use them while the code location loads."""

from __future__ import annotations

import datetime as dt


def quarter_start(day: dt.date) -> dt.date:
    """First day of the calendar quarter containing ``day`` (the curated partition key)."""
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def quarter_end(day: dt.date) -> dt.date:
    """First day of the quarter after the one containing ``day`` (exclusive end)."""
    start = quarter_start(day)
    month = start.month + 3
    return dt.date(start.year + (month > 12), (month - 1) % 12 + 1, 1)
