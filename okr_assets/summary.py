"""A short account of what the warehouse holds: rows per table, rejects by reason, and the
row accounting that must hold (accepted + rejected + deduplicated = landed)."""

from __future__ import annotations

from dataclasses import dataclass

from okr_assets.resources.warehouse import WarehouseResource

# A landed row is deduplicated when a later-landed version of its (trimmed) checkin_id was
# accepted. Counted from okr_raw and okr_processed alone, not from the rejects, so that the
# accounting below checks the tables against each other rather than restating them.
_DEDUPLICATED_SQL = """
SELECT count(*) FROM okr_raw.okr_raw r
JOIN okr_processed.okr_processed p ON trim(r.checkin_id) = p.checkin_id
WHERE r.raw_id < p.raw_id
"""


@dataclass(frozen=True)
class Summary:
    rows: dict[str, int]
    deduplicated: int
    rejects_by_reason: dict[str, int]

    @property
    def counts_add_up(self) -> bool:
        return (self.rows["okr_processed"] + self.rows["okr_rejects"] + self.deduplicated
                == self.rows["okr_raw"])

    def render(self) -> str:
        lines = ["", "okr_assets summary", "=================="]
        lines += [f"{table:<15} {count:>9,} rows" for table, count in self.rows.items()]
        lines.append("")
        lines.append(f"landed {self.rows['okr_raw']:,} = accepted {self.rows['okr_processed']:,} "
                     f"+ rejected {self.rows['okr_rejects']:,} + deduplicated {self.deduplicated:,}"
                     f"  -> {'OK' if self.counts_add_up else 'MISMATCH'}")
        lines.append("rejects by reason:")
        lines += [f"  {reason:<25} {n:>7,}" for reason, n in self.rejects_by_reason.items()] or ["  none"]
        return "\n".join(lines)


def table_summary(warehouse: WarehouseResource) -> Summary:
    """The summary of ``warehouse``, an initialised resource: a run's, or ``open_resources()``'s
    outside a run (``okr-assets summary``, the demo)."""
    warehouse.setup()
    rows = {t: warehouse.count(t) for t in ("okr_raw", "okr_processed", "okr_rejects", "okr_curated",
                                            "okr_features", "okr_predictions", "okr_drift_report")}
    dedup = int(warehouse.query(_DEDUPLICATED_SQL).iloc[0, 0])
    reasons = warehouse.query(
        "SELECT reason, count(*) AS n FROM okr_processed.okr_rejects GROUP BY 1 ORDER BY 2 DESC, 1")
    return Summary(rows=rows, deduplicated=dedup,
                   rejects_by_reason=dict(zip(reasons["reason"], reasons["n"].astype(int), strict=False)))
