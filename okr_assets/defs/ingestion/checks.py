"""The okr_raw check, from its Pandera model, evaluated in the warehouse on the rows a landing run wrote.

``okr_raw_schema`` is a blocking check spec of the okr_raw asset: inside each landing
transaction, before it commits, the rows it inserted (``raw_id`` above the batch's start) are
checked against ``RawCheckins`` where they are (``okr_assets.lib.table_checks``); a failing batch
is rolled back and landing stops. The asset reports one result with its materialization. After
the last batch, the run's rows are compared with the whole table: no ``source_key`` or ``raw_id``
of theirs may occur on another row (a batch only sees itself). A failure fails the run and keeps
downstream assets from running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from okr_assets.defs.checking import engine_check_result, passed_check_result

if TYPE_CHECKING:
    import pandas as pd

    from okr_assets.resources import WarehouseResource
    from okr_assets.resources.warehouse import LandResult

OKR_RAW_SCHEMA = AssetCheckSpec(
    name="okr_raw_schema", asset="okr_raw", blocking=True,
    description="Rows landed by the materialization match the RawCheckins model (lineage complete, "
                "sources known, keys unique), checked in the warehouse before each landing transaction commits.")


class LandedRowsCheck:
    """``okr_raw_schema`` over all batches of one landing run."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.scope = f"rows landed by run {run_id[:8]}"
        self.rows_checked = 0
        self.batches = 0
        self._failure: AssetCheckResult | None = None

    def add(self, warehouse: WarehouseResource, result: LandResult,
            fetch: Callable[..., pd.DataFrame]) -> None:
        """Check one batch's inserted rows, inside its transaction (``fetch`` runs there)."""
        from okr_assets.lib.schemas import CHECK_KEYS, RawCheckins

        if not result.inserted:
            return
        self.batches += 1
        raw = warehouse.table("okr_raw")
        checked = engine_check_result(fetch, RawCheckins, raw.filter(raw.raw_id > result.after_raw_id),
                                      f"{self.scope}, batch {self.batches}", CHECK_KEYS["okr_raw"],
                                      check_name=OKR_RAW_SCHEMA.name)
        self.rows_checked += int(checked.metadata["rows_checked"].value)
        if not checked.passed and self._failure is None:
            self._failure = checked

    @property
    def failed(self) -> bool:
        """A batch broke the model (its transaction must not commit)."""
        return self._failure is not None

    def result(self, warehouse: WarehouseResource) -> AssetCheckResult:
        from okr_assets.lib.schemas import RawCheckins

        if self._failure is not None:
            failure = self._failure
            return AssetCheckResult(
                check_name=OKR_RAW_SCHEMA.name, passed=False, severity=failure.severity,
                description=f"{failure.description} (batch {self.batches}, the last one landing tried: it was "
                            "rolled back, none of its rows landed)",
                metadata={**failure.metadata, "scope": self.scope, "rows_checked": self.rows_checked})
        repeated = self._repeated(warehouse) if self.batches else {"raw_id": 0, "source_key": 0}
        if any(repeated.values()):
            return AssetCheckResult(
                check_name=OKR_RAW_SCHEMA.name, passed=False, severity=AssetCheckSeverity.ERROR,
                description=f"values of {self.scope} repeated on other rows of okr_raw: "
                            + ", ".join(f"{n} {c}" for c, n in repeated.items() if n),
                metadata={"scope": self.scope, "rows_checked": self.rows_checked,
                          **{f"repeated_{c}": n for c, n in repeated.items()}})
        return passed_check_result(RawCheckins, self.scope, self.rows_checked, check_name=OKR_RAW_SCHEMA.name,
                                   batches=self.batches)

    def _repeated(self, warehouse: WarehouseResource) -> dict[str, int]:
        """The run's rows whose ``raw_id`` or ``source_key`` another row of okr_raw also has."""
        raw = warehouse.table("okr_raw")
        mine = raw.filter(raw.run_id == self.run_id)
        counts = {}
        for column in ("raw_id", "source_key"):
            sharing = raw.semi_join(mine.select(column).distinct(), column)
            per_value = sharing.group_by(column).aggregate(n=sharing.count())
            extra = per_value.filter(per_value.n > 1).aggregate(extra=(per_value.n - 1).sum().coalesce(0))
            counts[column] = int(warehouse.fetch(extra)["extra"].iloc[0])
        return counts
