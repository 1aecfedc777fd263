"""Calendar helpers of the partitions, in pandas (for the few values a step reads back).

Which okr_processed partition a landed row belongs to is decided by the warehouse engine as the
row lands: ``okr_assets.lib.validation.routed``.
"""

from __future__ import annotations

import pandas as pd


def quarter_starts(days: pd.Series) -> pd.Series:
    """Vectorised ``okr_assets.lib.quarters.quarter_start`` for a datetime64 series."""
    return days.dt.to_period("Q").dt.start_time
