"""okr_processed, okr_rejects and okr_curated: typed, validated, deduplicated and curated tables.

Thin Dagster shells: the work is done by the pure code in ``okr_assets.lib``. okr_processed and
okr_rejects read their partition range from the warehouse into pandas and validate it there;
okr_curated is an Ibis expression the warehouse runs in its engine. Each writes the range to
staging, checks it, publishes it in one transaction and reports counts as metadata. pandas, Ibis
and that code are imported inside the functions that run: loading the code location (every run
process does) must not import them.
"""


import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from okr_assets import settings
from okr_assets.defs.metadata import WAREHOUSE_KIND, column_schema, counts_table
from okr_assets.defs.partitions import FIRST_PARTITION, daily_partitions, quarterly_partitions
from okr_assets.defs.tables.checks import OKR_CURATED_SCHEMA, OKR_PROCESSED_SCHEMA, OKR_REJECTS_SCHEMA, audit_range
from okr_assets.lib.memory import free_cycles, older_objects_frozen
from okr_assets.resources import KafkaResource, WarehouseResource
from okr_assets.resources.kafka import BrokerUnavailableError

if TYPE_CHECKING:
    import pandas as pd

OWNERS = ["team:okr-data-platform"]
TOUCHED_QUARTERS = "okr/touched_cycle_quarters"
OKR_RAW = AssetKey("okr_raw")
OKR_PROCESSED = AssetKey("okr_processed")
OKR_REJECTS = AssetKey("okr_rejects")
TARGETS = [("okr_processed", "checkin_date"), ("okr_rejects", "partition_date")]  # (table, partition column)


def _selected(context: AssetExecutionContext, result: AssetCheckResult) -> bool:
    """Whether the run reports this check (a user can leave a check out of a run: it is still
    audited before anything is published, and a blocking failure still stops the publish)."""
    return AssetCheckKey(result.asset_key, result.check_name) in context.selected_asset_check_keys


def _window(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    window = context.partition_time_window
    return window.start.date(), window.end.date()


def _range_label(start: dt.date, end: dt.date) -> str:
    return f"{start} .. {end - dt.timedelta(days=1)}"


@multi_asset(
    specs=[
        AssetSpec(
            OKR_PROCESSED, deps=[OKR_RAW], group_name="tables", owners=OWNERS,
            kinds={WAREHOUSE_KIND, "pandas", "pandera"}, code_version="2", tags={"layer": "processed"},
            description="Typed, validated, deduplicated check-ins with derived progress and score: "
                        "the newest valid version of each check-in (an invalid newer version is "
                        "rejected and leaves it in place); one daily partition per check-in date (UTC).",
            metadata={"dagster/column_schema": column_schema("okr_processed"),
                      "dagster/table_name": "okr_processed.okr_processed"},
        ),
        AssetSpec(
            OKR_REJECTS, deps=[OKR_RAW], group_name="tables", owners=OWNERS,
            kinds={WAREHOUSE_KIND, "pandas"}, code_version="2", tags={"layer": "processed"},
            description="Every landed row that failed validation, with its reason code, a sentence "
                        "and its lineage, unless a newer valid version of its check-in superseded it "
                        "(then it is counted as deduplicated); nothing is dropped silently.",
            metadata={"dagster/column_schema": column_schema("okr_rejects"),
                      "dagster/table_name": "okr_processed.okr_rejects"},
        ),
    ],
    check_specs=[OKR_PROCESSED_SCHEMA, OKR_REJECTS_SCHEMA],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    can_subset=False,
    name="process_checkins",
)
def process_checkins(
    context: AssetExecutionContext, warehouse: WarehouseResource, kafka: KafkaResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Validate and deduplicate the okr_raw rows of a partition range: per check-in the newest
    valid version is accepted, older versions are deduplicated and invalid newer ones rejected.

    For every landed row of the range: accepted + rejected + deduplicated = landed.
    """
    yield from process_range(context, warehouse, kafka, *_window(context))


@dataclass
class _Tally:
    """What a chunked run of ``process_range`` has done so far (counts per day for the update
    notifications, reject reasons, kinds of deduplication, curated quarters touched)."""

    landed: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    deduplicated: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    deduplicated_by_kind: Counter[str] = field(default_factory=Counter)
    rejected_over_valid: int = 0  # invalid newer versions rejected; the older valid one stays
    quarters: set[str] = field(default_factory=set)


def _days(frame: "pd.DataFrame", column: str) -> Counter[str]:
    """Rows per day of a date column (counted first, so only the distinct days are formatted)."""
    import pandas as pd

    if frame.empty:
        return Counter()
    counts = frame[column].value_counts()
    return Counter(dict(zip(pd.to_datetime(counts.index).strftime("%Y-%m-%d"), counts.tolist(), strict=True)))


def _quarter_keys(starts: "pd.Series") -> set[str]:
    import pandas as pd

    from okr_assets.lib.routing import quarter_starts

    distinct = pd.Series(pd.to_datetime(starts.dropna().unique()))  # a few cycle starts, not every row
    return {ts.strftime("%Y-%m-%d") for ts in quarter_starts(distinct).unique()}


def _landed_months(
    warehouse: WarehouseResource, start: dt.date, end: dt.date
) -> "Iterator[tuple[dt.date, dt.date, pd.DataFrame, pd.DataFrame]]":
    """(first day, end, landed rows, other versions) of each month of the range: the other
    versions are the rows landed outside the month for the same check-ins, which decide with the
    month's own rows which version of each check-in is the newest valid one."""
    from okr_assets.lib.routing import month_windows

    for lo, hi in month_windows(start, end):
        raw = warehouse.read_range("okr_raw", "partition_date", lo, hi, text_storage="pyarrow")
        if raw.empty:
            yield lo, hi, raw, raw
            continue
        others = warehouse.query(
            "SELECT * FROM okr_raw.okr_raw WHERE (partition_date < ? OR partition_date >= ?) "
            "AND trim(checkin_id) IN (SELECT trim(checkin_id) FROM okr_raw.okr_raw "
            "WHERE partition_date >= ? AND partition_date < ?) ORDER BY raw_id", [lo, hi, lo, hi],
            text_storage="pyarrow")
        yield lo, hi, raw, others


def _validated_months(
    landed: "Iterator[tuple[dt.date, dt.date, pd.DataFrame, pd.DataFrame]]", tally: _Tally
) -> "Iterator[tuple[dt.date, dt.date, int, pd.DataFrame, pd.DataFrame]]":
    """(first day, end, rows landed, accepted, rejects) of each landed month in turn (empty frames
    for a month without landed rows: its old rows must still go). No Dagster calls: this runs in
    a background thread."""
    import pandas as pd

    from okr_assets.lib.validation import validate_versions

    for lo, hi, raw, others in landed:
        if raw.empty:
            yield lo, hi, 0, pd.DataFrame(), pd.DataFrame()
            continue
        result = validate_versions(raw, FIRST_PARTITION, others)
        accepted, rejects, superseded = result.accepted, result.rejects, result.superseded
        if len(accepted) + len(rejects) + len(superseded) != len(raw):  # a rule lost rows: fail loudly
            raise RuntimeError(f"row accounting broken for {_range_label(lo, hi)}: {len(accepted)} + "
                               f"{len(rejects)} + {len(superseded)} != {len(raw)}")
        tally.landed += _days(raw, "partition_date")
        tally.accepted += _days(accepted, "checkin_date")
        tally.rejected += _days(rejects, "partition_date")
        tally.deduplicated += _days(superseded, "partition_date")
        tally.by_reason += Counter(rejects["reason"].value_counts().to_dict())
        tally.deduplicated_by_kind += Counter(result.deduplicated_by_kind())
        tally.rejected_over_valid += result.rejected_over_valid
        tally.quarters |= _quarter_keys(accepted["cycle_start"])
        n_raw = len(raw)
        del raw, others, superseded, result
        free_cycles()  # this month's intermediate columns (see okr_assets.lib.memory)
        yield lo, hi, n_raw, accepted, rejects


def process_range(
    context: AssetExecutionContext, warehouse: WarehouseResource, kafka: KafkaResource, start: dt.date, end: dt.date
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """The work of ``process_checkins`` for the days ``start <= day < end`` (also used, without
    partitions, by the backfill benchmark's baseline). Write, audit, publish: the range is
    validated a month at a time and written to the staging twins a quarter per transaction
    (memory stays at a few months of pandas rows and one quarter of uncommitted warehouse rows),
    then the blocking check okr_processed_schema reads the staged rows, and only when it passes
    is the range replaced in one transaction. A failing check, or any failure before the
    publish, leaves the tables as they were; the retry redoes the range."""
    from okr_assets.lib.pipelining import overlapped
    from okr_assets.lib.routing import month_windows
    from okr_assets.lib.validation import SUPERSESSION_KINDS

    warehouse.setup()
    tally = _Tally()
    staged = [table for table, _ in TARGETS]
    # One refresh of okr_processed at a time, from its first read to its publish: two runs (a
    # sensor's, a backfill from the UI, a landing run refreshing today's partition itself) must
    # not interleave, or the one that read older okr_raw rows could publish last; and a staging
    # twin has one writer.
    with warehouse.exclusive("okr_processed", on_wait=context.log.info), older_objects_frozen():
        # Curated partitions to refresh: the cycles of the new rows and of the rows they replace.
        before = warehouse.query(
            "SELECT DISTINCT cycle_start FROM okr_processed.okr_processed "
            "WHERE checkin_date >= ? AND checkin_date < ?", [start, end])
        tally.quarters |= _quarter_keys(before["cycle_start"])
        warehouse.clear_staged(staged)

        # Staged a quarter per transaction: DuckDB keeps a transaction's new rows in memory
        # until it commits, so not the whole range at once; but monthly commits took 5.8 s of a
        # million-row run and quarterly ones 2.9 s (a month's ~52,000 rows are under a DuckDB
        # row group, so most likely each went through the write-ahead log and a checkpoint).
        def written(quarter: "Iterator[tuple[dt.date, dt.date, int, pd.DataFrame, pd.DataFrame]]",
                    ) -> "Iterator[list[pd.DataFrame]]":
            for lo, hi, rows, accepted, rejects in quarter:
                if hi < end:
                    context.log.info(f"okr_processed {_range_label(lo, hi)}: {rows} landed rows validated")
                yield [accepted, rejects]

        # Three stages overlap, each a month ahead of the next: reading okr_raw (the database,
        # without the GIL), validating (pandas) and, here, writing and committing.
        with overlapped(_landed_months(warehouse, start, end), partial(_validated_months, tally=tally),
                        name="okr-processed") as months:
            for lo, hi in month_windows(start, end, months=3):  # a quarter: its months, in order
                quarter = islice(months, len(month_windows(lo, hi)))
                warehouse.load_staged(staged, written(quarter))
        checks = [audit_range(warehouse, OKR_PROCESSED_SCHEMA, "okr_processed", "checkin_date", start, end),
                  audit_range(warehouse, OKR_REJECTS_SCHEMA, "okr_rejects", "partition_date", start, end)]
        if not checks[0].passed:
            warehouse.clear_staged(staged)
            yield from (c for c in checks if _selected(context, c))
            raise Failure(
                description=f"okr_processed_schema failed on the new rows of {_range_label(start, end)}: "
                            f"{checks[0].description}. Nothing was published: okr_processed and okr_rejects keep "
                            "their previous rows, and nothing downstream is refreshed.",
                metadata={"partition_range": _range_label(start, end)})
        warehouse.publish_staged(start, end, TARGETS)
    results = {c.asset_key: [c] if _selected(context, c) else [] for c in checks}
    # Each month's counts were checked to add up as it was validated, so the sums add up too.
    landed, n_acc, n_rej, n_dup = (sum(c.values()) for c in (tally.landed, tally.accepted, tally.rejected,
                                                             tally.deduplicated))
    by_reason = dict(tally.by_reason.most_common())
    by_kind = {kind: tally.deduplicated_by_kind[kind] for kind in SUPERSESSION_KINDS}
    quarters = sorted(tally.quarters)
    context.log.info(
        f"okr_processed {_range_label(start, end)}: landed {landed} = accepted {n_acc} + "
        f"rejected {n_rej} + deduplicated {n_dup}; rejects by reason {by_reason}; deduplicated "
        f"by kind {by_kind}; {tally.rejected_over_valid} rejected newer version(s) left an older "
        "valid version in place")
    published = _notify_updates(context, kafka, start, end, tally)
    common = {"partition_range": _range_label(start, end), "rows_landed": landed}
    # dagster/row_count is the whole table (the UI shows it as "Row count"); one run writes a range
    # of partitions, so the counts of this range are the rows_* entries.
    yield MaterializeResult(
        asset_key=OKR_PROCESSED,
        metadata={
            **common,
            "dagster/row_count": warehouse.count("okr_processed"),
            "rows_accepted": n_acc,
            "rows_rejected": n_rej,
            "rows_deduplicated": n_dup,
            "counts_add_up": n_acc + n_rej + n_dup == landed,
            "rejects_by_reason": counts_table(by_reason),
            # Only a newer valid version supersedes; these sum to rows_deduplicated.
            "deduplicated_by_kind": counts_table(by_kind, key="kind"),
            # Of rows_rejected: invalid newer versions of check-ins whose older valid version stays.
            "rejects_older_valid_version_kept": tally.rejected_over_valid,
            TOUCHED_QUARTERS: MetadataValue.json(quarters),
            "update_notifications_published": published,
        },
        check_results=results[OKR_PROCESSED],
    )
    yield MaterializeResult(
        asset_key=OKR_REJECTS,
        metadata={**common, "dagster/row_count": warehouse.count("okr_rejects"), "rows_rejected": n_rej,
                  "rejects_by_reason": counts_table(by_reason)},
        check_results=results[OKR_REJECTS],
    )


def _notify_updates(
    context: AssetExecutionContext, kafka: KafkaResource, start: dt.date, end: dt.date, tally: _Tally
) -> int:
    """Publish one message per refreshed partition to the updates topic, so systems outside
    Dagster can react. Best effort: the tables are already committed, so a broker outage is
    logged as an error and shown in metadata rather than failing the run."""
    if not kafka.publish_updates:
        return 0
    import pandas as pd

    days = pd.date_range(start, end - dt.timedelta(days=1), freq="D").strftime("%Y-%m-%d")
    notes = [
        {"asset": "okr_processed", "partition": day, "run_id": context.run.run_id,
         "rows_landed": tally.landed[day], "rows_accepted": tally.accepted[day],
         "rows_rejected": tally.rejected[day], "rows_deduplicated": tally.deduplicated[day],
         "refreshed_at": dt.datetime.now(dt.UTC).isoformat()}
        for day in days
    ]
    try:
        kafka.publish_json(kafka.updates_topic, key="okr_processed", payloads=notes)
    except BrokerUnavailableError as exc:
        context.log.error(f"could not publish {len(notes)} update notification(s) to "
                          f"{kafka.updates_topic!r}: {exc}")
        return 0
    return len(notes)


@asset(
    name="okr_curated",
    deps=[OKR_PROCESSED],
    partitions_def=quarterly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="tables",
    owners=OWNERS,
    kinds={WAREHOUSE_KIND, "ibis", "pandera"},
    code_version="2",
    tags={"layer": "curated"},
    metadata={"dagster/column_schema": column_schema("okr_curated"),
              "dagster/table_name": "okr_curated.okr_curated"},
    check_specs=[OKR_CURATED_SCHEMA],
)
def okr_curated(context: AssetExecutionContext, warehouse: WarehouseResource
                ) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Model-ready key results: one row per (key result, cycle) with context, latest state,
    objective progress and, for closed cycles, the final score and whether it reached 0.7.

    Partitioned by the calendar quarter in which the cycle starts. Built in the warehouse engine
    (``okr_assets.lib.curation.curate``, one ``INSERT ... SELECT`` into staging), checked
    (okr_curated_schema, blocking) and published in one transaction only when the check passes.
    """
    from okr_assets.lib.curation import curate

    warehouse.setup()
    start, end = _window(context)
    as_of = dt.datetime.now(dt.UTC).date()

    # One refresh of okr_curated at a time (whoever launched it): the staging twin has one writer,
    # and a run that read older okr_processed rows cannot publish after one that read newer ones.
    with warehouse.exclusive("okr_curated", on_wait=context.log.info):
        warehouse.clear_staged(["okr_curated"])
        processed = warehouse.table("okr_processed")
        in_range = processed.filter((processed.cycle_start >= start) & (processed.cycle_start < end))
        warehouse.insert_staged("okr_curated", curate(in_range, as_of=as_of, target_score=settings.target_score()))
        staged = warehouse.table("okr_curated", staged=True)
        sums = warehouse.fetch(staged.aggregate(
            rows=staged.count(), checkins=staged.n_checkins.sum().coalesce(0),
            closed=staged.cycle_closed.sum().coalesce(0), reached=staged.reached_target.sum().coalesce(0)))
        totals = {k: int(v) for k, v in sums.iloc[0].items()}
        cycles = set(warehouse.fetch(staged.select("cycle_id").distinct())["cycle_id"])
        check = audit_range(warehouse, OKR_CURATED_SCHEMA, "okr_curated", "cycle_quarter", start, end)
        if not check.passed:
            warehouse.clear_staged(["okr_curated"])
            yield from [check] if _selected(context, check) else []
            raise Failure(description=f"okr_curated_schema failed on the new rows of {start} .. "
                                      f"{end - dt.timedelta(days=1)}: {check.description}. Nothing was published: "
                                      "okr_curated keeps its previous rows, and nothing downstream is refreshed.")
        warehouse.publish_staged(start, end, [("okr_curated", "cycle_quarter")])
    reached = totals["reached"] / totals["closed"] if totals["closed"] else float("nan")
    context.log.info(
        f"okr_curated {start}..{end}: {totals['rows']} key results from {totals['checkins']} check-ins")
    yield MaterializeResult(
        metadata={
            "dagster/row_count": warehouse.count("okr_curated"),  # the whole table, as for okr_processed
            "partition_range": f"{start} .. {end - dt.timedelta(days=1)}",
            "rows_written": totals["rows"],
            "checkins_read": totals["checkins"],
            "cycles": MetadataValue.json(sorted(cycles)),
            "closed_key_results": totals["closed"],
            "share_reached_target": MetadataValue.float(round(reached, 4)) if totals["closed"] else "n/a",
            "as_of": as_of.isoformat(),
        },
        check_results=[check] if _selected(context, check) else [],
    )
