"""The okr_raw check, from its Pandera model, evaluated on the rows a landing run wrote.

``okr_raw_schema`` is a blocking check spec of the okr_raw asset: the asset validates each batch
of rows it inserted, with the ``raw_id`` the database gave them, while the batch is in memory, and
reports one result with its materialization. Reading the run's rows back (the separate check
this replaces) cost a fifth of a CSV landing run; what is validated is the same rows. A failure
still fails the run and keeps downstream assets from running. The check is no longer a step of
its own: it runs whenever okr_raw is materialized with it selected (the default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from okr_assets.defs.checking import pandera_check_result, passed_check_result

if TYPE_CHECKING:
    import pandas as pd

OKR_RAW_SCHEMA = AssetCheckSpec(
    name="okr_raw_schema", asset="okr_raw", blocking=True,
    description="Rows landed by the materialization match the RawCheckins model (lineage complete, "
                "sources known, keys unique), checked on the rows as inserted, with their raw_id.")


class LandedRowsCheck:
    """``okr_raw_schema`` over all batches of one run: each batch through the Pandera model, and
    uniqueness of ``raw_id`` and ``source_key`` across batches (a batch only sees itself). Across
    batches ``source_key`` is compared by 64-bit hash, so memory stays 16 bytes a row; a hash
    collision could only fail the check wrongly (odds ~1e-8 for a million rows), never pass it."""

    def __init__(self, run_id: str) -> None:
        self.scope = f"rows landed by run {run_id[:8]}"
        self.rows_checked = 0
        self.batches = 0
        self._failure: AssetCheckResult | None = None
        self._failed_batch = 0
        self._raw_ids: list[Any] = []
        self._key_hashes: list[Any] = []

    def add(self, rows: pd.DataFrame) -> None:
        """Validate one batch of inserted rows (``LandResult.inserted_rows``). The frame is
        validated in place (its columns are replaced by their coerced versions): pass one you own."""
        import pandas as pd

        from okr_assets.lib.schemas import RawCheckins

        if not len(rows):
            return
        self.batches += 1
        self.rows_checked += len(rows)
        if "raw_id" in rows.columns and "source_key" in rows.columns:
            self._raw_ids.append(rows["raw_id"].to_numpy(copy=True))
            self._key_hashes.append(pd.util.hash_array(rows["source_key"].astype(object).to_numpy()))
        result = pandera_check_result(RawCheckins, rows, scope=f"{self.scope}, batch {self.batches}")
        if not result.passed and self._failure is None:
            self._failure, self._failed_batch = result, self.batches

    @property
    def failed(self) -> bool:
        """A batch broke the model (its transaction must not commit)."""
        return self._failure is not None

    def result(self) -> AssetCheckResult:
        import numpy as np
        import pandas as pd

        from okr_assets.lib.schemas import RawCheckins

        if self._failure is not None:
            failure = self._failure
            return AssetCheckResult(
                check_name=OKR_RAW_SCHEMA.name, passed=False, severity=failure.severity,
                description=f"{failure.description} (batch {self._failed_batch} of {self.batches}; "
                            "that batch was rolled back, none of its rows landed)",
                metadata={**failure.metadata, "scope": self.scope, "rows_checked": self.rows_checked})
        repeated = {name: int(len(values) - len(pd.unique(values))) for name, values in
                    (("raw_id", np.concatenate(self._raw_ids) if self._raw_ids else np.array([])),
                     ("source_key", np.concatenate(self._key_hashes) if self._key_hashes else np.array([])))}
        if any(repeated.values()):
            return AssetCheckResult(
                check_name=OKR_RAW_SCHEMA.name, passed=False, severity=AssetCheckSeverity.ERROR,
                description=f"values repeated across the batches of {self.scope}: "
                            + ", ".join(f"{n} {c}" for c, n in repeated.items() if n),
                metadata={"scope": self.scope, "rows_checked": self.rows_checked,
                          **{f"repeated_{c}": n for c, n in repeated.items()}})
        return passed_check_result(RawCheckins, self.scope, self.rows_checked, check_name=OKR_RAW_SCHEMA.name,
                                   batches=self.batches)
