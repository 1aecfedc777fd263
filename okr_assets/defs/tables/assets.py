"""okr_processed, okr_rejects and okr_curated: typed, validated, deduplicated and curated tables.

Thin Dagster shells: the work is done by Ibis expressions in ``okr_assets.lib`` (validation and
deduplication, curation) that the warehouse runs in its engine, where okr_raw and okr_processed
are. Each writes the range to staging, checks it, publishes it in one transaction and reports
counts, computed by the engine, as metadata. pandas, Ibis
and that code are imported inside the functions that run: loading the code location (every run
process does) must not import them.
"""


import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
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
            kinds={WAREHOUSE_KIND, "ibis", "pandera"}, code_version="3", tags={"layer": "processed"},
            description="Typed, validated, deduplicated check-ins with derived progress and score: "
                        "the newest valid version of each check-in (an invalid newer version is "
                        "rejected and leaves it in place); one daily partition per check-in date (UTC).",
            metadata={"dagster/column_schema": column_schema("okr_processed"),
                      "dagster/table_name": "okr_processed.okr_processed"},
        ),
        AssetSpec(
            OKR_REJECTS, deps=[OKR_RAW], group_name="tables", owners=OWNERS,
            kinds={WAREHOUSE_KIND, "ibis"}, code_version="3", tags={"layer": "processed"},
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
    """What ``process_range`` did, per day (for the update notifications) and in total."""

    landed: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    deduplicated: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    deduplicated_by_kind: Counter[str] = field(default_factory=Counter)
    rejected_over_valid: int = 0  # invalid newer versions rejected; the older valid one stays
    quarters: set[str] = field(default_factory=set)


def _day_counts(frame: "pd.DataFrame", day: str = "day", n: str = "n") -> Counter[str]:
    import pandas as pd

    if frame.empty:
        return Counter()
    return Counter(dict(zip(pd.to_datetime(frame[day]).dt.strftime("%Y-%m-%d"), frame[n].astype(int), strict=True)))


def _quarter_keys(starts: "pd.Series") -> set[str]:
    import pandas as pd

    from okr_assets.lib.routing import quarter_starts

    distinct = pd.Series(pd.to_datetime(starts.dropna().unique()))  # a few cycle starts, not every row
    return {ts.strftime("%Y-%m-%d") for ts in quarter_starts(distinct).unique()}


def _stage_range(warehouse: WarehouseResource, start: dt.date, end: dt.date) -> _Tally:
    """Judge the okr_raw rows of ``[start, end)`` in the engine and write the accepted ones and the
    rejects to the staging twins (one ``INSERT ... SELECT`` each); count what went where. The
    counts come from three places that must agree: okr_raw (landed), the staged rows (accepted,
    rejected) and the verdicts (deduplicated); a mismatch fails the run before anything is
    published."""
    import ibis

    from okr_assets.lib import validation

    raw = warehouse.table("okr_raw")
    verdicts = validation.range_verdicts(raw.schema(), FIRST_PARTITION)
    candidates = {validation.CANDIDATES: validation.range_candidates(raw, start, end)}
    # The verdicts (every rule on every row, the costly part) are computed once into a scratch
    # table; each statement below decides the winners from it again (a narrow aggregate and a
    # join), cheaper than writing the decided rows to a second table.
    with warehouse.scratch("okr_judged", "okr_processed", verdicts, candidates) as rows:
        judged = validation.decide(rows)
        warehouse.insert_staged("okr_processed", validation.processed_rows(judged))
        warehouse.insert_staged("okr_rejects", validation.reject_rows(judged))
        fates = judged.filter(judged.outcome.isin(validation.SUPERSESSION_KINDS) | judged.over_valid)
        fates = warehouse.fetch(fates.group_by(day=fates.partition_date, kind=fates.outcome,
                                               over_valid=fates.over_valid).aggregate(n=fates.count()))
    by_kind = fates[fates["kind"].isin(validation.SUPERSESSION_KINDS)]
    rejected_over_valid = int(fates.loc[fates["over_valid"].astype(bool), "n"].sum())

    lo, hi = ibis.date(start), ibis.date(end)
    own = raw.filter((raw.partition_date >= lo) & (raw.partition_date < hi))
    processed, rejects = warehouse.table("okr_processed", staged=True), warehouse.table("okr_rejects", staged=True)
    tally = _Tally(
        landed=_day_counts(warehouse.fetch(own.group_by(day=own.partition_date).aggregate(n=own.count()))),
        accepted=_day_counts(warehouse.fetch(processed.group_by(day=processed.checkin_date)
                                             .aggregate(n=processed.count()))),
        rejected=_day_counts(warehouse.fetch(rejects.group_by(day=rejects.partition_date)
                                             .aggregate(n=rejects.count()))),
    )
    tally.deduplicated = _day_counts(by_kind.groupby("day", as_index=False)["n"].sum())
    tally.deduplicated_by_kind = Counter(by_kind.groupby("kind")["n"].sum().astype(int).to_dict())
    reasons = warehouse.fetch(rejects.group_by("reason").aggregate(n=rejects.count()))
    tally.by_reason = Counter(dict(zip(reasons["reason"], reasons["n"].astype(int), strict=True)))
    tally.rejected_over_valid = rejected_over_valid
    tally.quarters = _quarter_keys(warehouse.fetch(processed.select("cycle_start").distinct())["cycle_start"])

    landed, n_acc, n_rej, n_dup = (sum(c.values()) for c in (tally.landed, tally.accepted, tally.rejected,
                                                             tally.deduplicated))
    if n_acc + n_rej + n_dup != landed:  # a rule or a statement lost or doubled rows: fail loudly
        raise RuntimeError(f"row accounting broken for {_range_label(start, end)}: {n_acc} accepted + "
                           f"{n_rej} rejected + {n_dup} deduplicated != {landed} landed")
    outside = [day for day in tally.accepted if not start.isoformat() <= day < end.isoformat()]
    if outside:  # the publish replaces [start, end) only: such rows would be lost
        raise RuntimeError(f"accepted rows of {_range_label(start, end)} have check-in dates outside it: "
                           f"{sorted(outside)[:5]}")
    return tally


def process_range(
    context: AssetExecutionContext, warehouse: WarehouseResource, kafka: KafkaResource, start: dt.date, end: dt.date
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """The work of ``process_checkins`` for the days ``start <= day < end`` (also used, without
    partitions, by the backfill benchmark's baseline). Write, audit, publish: the engine judges
    the range and writes it to the staging twins, then the blocking check okr_processed_schema
    reads the staged rows, and only when it passes is the range replaced in one transaction. A
    failing check, or any failure before the publish, leaves the tables as they were; the retry
    redoes the range."""
    from okr_assets.lib.validation import SUPERSESSION_KINDS

    warehouse.setup()
    staged = [table for table, _ in TARGETS]
    # One refresh of okr_processed at a time, from its first read to its publish: two runs (a
    # sensor's, a backfill from the UI, a landing run refreshing today's partition itself) must
    # not interleave, or the one that read older okr_raw rows could publish last; and a staging
    # twin has one writer.
    with warehouse.exclusive("okr_processed", on_wait=context.log.info):
        # Curated partitions to refresh: the cycles of the new rows and of the rows they replace.
        before = warehouse.query(
            "SELECT DISTINCT cycle_start FROM okr_processed.okr_processed "
            "WHERE checkin_date >= ? AND checkin_date < ?", [start, end])
        warehouse.clear_staged(staged)
        tally = _stage_range(warehouse, start, end)
        tally.quarters |= _quarter_keys(before["cycle_start"])
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
