"""The warehouse resource on both engines (embedded DuckDB and a real PostgreSQL): values survive
the bulk-load path exactly, concurrent landing adds nothing twice, and a writer killed in the
middle of replacing a partition leaves the old partition intact."""

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okr_assets.defs.partitions import FIRST_PARTITION as FIRST
from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.resources import WarehouseResource
from okr_assets.resources.warehouse_backends import to_pyformat

TRICKY_TEXT = ["plain", "", None, "tab\there", "new\nline", "back\\slash \\N", 'quote "q" \'s\'',
               "ünïcødé ✓ 🚀", "  spaced  ", "semi;colon,comma", "\\.", "percent % and ? mark"]


def _raw_rows(keys: range, tag: str = "x") -> pd.DataFrame:
    now = pd.Timestamp("2025-07-10T12:00:00Z")
    rows = []
    for k in keys:
        row: dict[str, object] = dict.fromkeys(CHECKIN_COLUMNS)
        row.update(checkin_id=f"c{k}", comment=TRICKY_TEXT[k % len(TRICKY_TEXT)], value=str(k),
                   source="kafka", source_ref=f"t/0/{k}", source_key=f"kafka:t:0:{k}",
                   ingested_at=now, run_id=tag)  # no check-in time: routed to the ingest day
        rows.append(row)
    return pd.DataFrame(rows)


def test_pyformat_translation_leaves_literals_alone() -> None:
    assert to_pyformat("SELECT * FROM t WHERE a = ? AND b = '?' AND c LIKE 'x%'") == \
        "SELECT * FROM t WHERE a = %s AND b = '?' AND c LIKE 'x%%'"
    assert to_pyformat('SELECT "we?ird" FROM t WHERE d = ?') == 'SELECT "we?ird" FROM t WHERE d = %s'


def test_compiled_expressions_keep_their_literals(warehouse_url: str) -> None:
    """An Ibis expression runs as compiled SQL through the placeholder translation of the
    warehouse: literals holding a placeholder, a percent sign or a quote reach the engine as they are."""
    import ibis

    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    staged = warehouse.table("okr_curated", staged=True)
    text = "50% done? it's 'quoted'"
    assert warehouse.fetch(staged.aggregate(n=staged.count()).mutate(text=ibis.literal(text)))["text"][0] == text


def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"duckdb:///<path>, postgresql://.* or spark:///<folder>"):
        _ = WarehouseResource(url="mysql://x@y/z").backend
    with pytest.raises(ValueError, match="names no warehouse folder"):
        _ = WarehouseResource(url="spark://master:7077").backend


def test_the_embedded_engine_keeps_to_its_memory_limit(tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}", duckdb_memory_limit="300MB")
    limit = warehouse.query("SELECT current_setting('memory_limit') AS m")["m"][0]
    assert limit.replace(" ", "") in {"286.1MiB", "300.0MB", "300MB"}, limit
    with pytest.raises(ValueError, match="not a size"):
        WarehouseResource(url=f"duckdb:///{tmp_path}/x.duckdb", duckdb_memory_limit="1GB'; DROP").execute("SELECT 1")


def test_staged_rows_are_published_from_where_the_engine_keeps_them(warehouse_url: str) -> None:
    """Rows staged inside a block that holds the warehouse open are published into the table. On
    DuckDB the staging twins are in the in-memory work catalog: the file itself holds no staging
    table, and a staged range not published is gone once the file is closed. On PostgreSQL they
    are tables beside the ones they stage."""
    import ibis

    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    columns = warehouse.columns("okr_curated")
    july, october = dt.date(2025, 7, 1), dt.date(2025, 10, 1)
    warehouse.append("okr_curated", pd.DataFrame([{**dict.fromkeys(columns), "key_result_id": "kr1",
                                                   "cycle_id": "c1", "cycle_quarter": july}]))
    curated = warehouse.table("okr_curated")
    # July's row, in October
    moved = curated.filter(curated.cycle_quarter == july).mutate(cycle_quarter=ibis.literal(october))
    duckdb = warehouse_url.startswith("duckdb")
    with warehouse.held_open():
        warehouse.clear_staged(["okr_curated"])
        warehouse.insert_staged("okr_curated", moved)
        assert warehouse.count("okr_curated", staged=True) == 1
        in_file = set(warehouse.query("SELECT table_name FROM information_schema.tables "
                                      "WHERE table_catalog = current_database()")["table_name"])
        assert ("okr_curated_staged" in in_file) is not duckdb
        warehouse.publish_staged(october, dt.date(2025, 10, 2), [("okr_curated", "cycle_quarter")])
        assert warehouse.count("okr_curated", staged=True) == 0
        warehouse.insert_staged("okr_curated", moved)  # staged, never published
    assert warehouse.count("okr_curated") == 2
    assert warehouse.count("okr_curated", staged=True) == (0 if duckdb else 1)


def test_a_scratch_table_is_gone_after_its_block_even_when_the_block_fails(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    raw = warehouse.table("okr_raw")
    # Held open: DuckDB keeps scratch tables in an in-memory catalog that lasts while the file is open.
    with warehouse.held_open():
        with pytest.raises(RuntimeError, match="inside"), \
                warehouse.scratch("okr_test", "okr_processed", raw.select("raw_id")) as scratch:
            assert warehouse.fetch(scratch.count().name("n"))["n"][0] == 0
            raise RuntimeError("inside")
        with pytest.raises(Exception, match=r"(?i)okr_test_scratch"):
            warehouse.fetch(scratch.count().name("n"))


def test_unreachable_postgres_names_the_server_but_not_the_password() -> None:
    warehouse = WarehouseResource(url="postgresql://okr:s3cret-pw@127.0.0.1:1/okr")
    with pytest.raises(ConnectionError) as error:
        warehouse.setup()
    assert "127.0.0.1:1/okr" in str(error.value) and "s3cret-pw" not in str(error.value)


def test_values_survive_the_bulk_load_exactly(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    frame = _raw_rows(range(1, 25))
    result = warehouse.land_raw(frame, FIRST, run_id="r1")
    assert result.inserted == 24 and result.touched_partitions == {"2025-07-10"}
    back = warehouse.query("SELECT * FROM okr_raw.okr_raw ORDER BY raw_id")
    assert back["raw_id"].tolist() == list(range(1, 25))
    expected = [None if v is None else v for v in frame["comment"]]
    assert [None if pd.isna(v) else v for v in back["comment"]] == expected  # '' stays '', null stays null
    assert back["ingested_at"].dt.tz is not None and (back["ingested_at"] == frame["ingested_at"]).all()
    assert back["partition_date"].dt.strftime("%Y-%m-%d").unique().tolist() == ["2025-07-10"]
    # Parameters, not string building: a value that looks like SQL is just a value.
    evil = "x'); DROP TABLE okr_raw.okr_raw; --"
    assert warehouse.query("SELECT count(*) AS n FROM okr_raw.okr_raw WHERE comment = ?", [evil])["n"][0] == 0
    assert warehouse.count("okr_raw") == 24


def test_landing_the_same_rows_again_adds_nothing(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    assert warehouse.land_raw(_raw_rows(range(10)), FIRST).inserted == 10
    again = warehouse.land_raw(_raw_rows(range(5, 15)), FIRST)
    assert again.inserted == 5 and warehouse.count("okr_raw") == 15


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_plans_on_statistics_of_what_was_just_landed(warehouse_url: str) -> None:
    """Autovacuum analyses a fresh table up to a minute after it was written, and a transform
    planned before then has no column statistics (a features statement ran for minutes on such a
    plan). Landing analyses okr_raw itself whenever a batch adds more than a tenth of its rows."""
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    warehouse.execute("ALTER TABLE okr_raw.okr_raw SET (autovacuum_enabled = false)")  # only we analyse

    def counted() -> float:  # rows as the planner's statistics last counted them
        return float(warehouse.query("SELECT reltuples AS n FROM pg_class WHERE oid = 'okr_raw.okr_raw'::regclass")
                     ["n"][0])

    warehouse.land_raw(_raw_rows(range(500)), FIRST)
    assert counted() == 500
    assert warehouse.query("SELECT count(*) AS n FROM pg_stats WHERE schemaname = 'okr_raw' "
                           "AND tablename = 'okr_raw' AND attname = 'source_key'")["n"][0] == 1
    warehouse.land_raw(_raw_rows(range(500, 540)), FIRST)  # 8%: the statistics still hold
    assert counted() == 500
    warehouse.land_raw(_raw_rows(range(540, 700)), FIRST)
    assert counted() == 700


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_a_staged_batch_has_statistics_of_its_join_keys_only_when_asked(warehouse_url: str) -> None:
    """Staging analyses the temporary table (autovacuum never does); with ``keys``, only those
    columns, as landing asks for its batches' source_key. Control: without keys, every column."""
    import pandas as pd

    warehouse = WarehouseResource(url=warehouse_url)
    frame = pd.DataFrame({"source_key": [f"k{i}" for i in range(200)], "comment": ["x"] * 200})
    types = [("source_key", "TEXT"), ("comment", "TEXT")]
    analysed = {}
    for name, keys in (("okr_keys_only", ["source_key"]), ("okr_every_column", None)):
        with warehouse.transaction() as con:
            warehouse.backend.stage(con, name, frame, types, keys=keys)
            with con.cursor() as cur:
                cur.execute("SELECT attname FROM pg_stats WHERE tablename = %s", (name,))
                analysed[name] = {row[0] for row in cur.fetchall()}
    assert analysed == {"okr_keys_only": {"source_key"}, "okr_every_column": {"source_key", "comment"}}


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_transforms_plan_hash_joins_not_merge_joins(warehouse_url: str) -> None:
    """The warehouse's PostgreSQL sessions plan without merge joins: with a filter on a window's
    result misestimated, PostgreSQL merged okr_features' grid on one key of three (a cross
    product within each cycle). Control: the same join on a plain session of the same server
    does merge, so the assertion can fail."""
    import psycopg2

    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.execute("DROP TABLE IF EXISTS public.mj_a, public.mj_b")
    warehouse.execute("CREATE TABLE public.mj_a AS SELECT g AS k, g % 7 AS v FROM generate_series(1, 20000) g")
    warehouse.execute("CREATE TABLE public.mj_b AS SELECT g AS k, g % 5 AS w FROM generate_series(1, 20000) g")
    for table in ("mj_a", "mj_b"):
        warehouse.execute(f"ALTER TABLE public.{table} ADD PRIMARY KEY (k)")
        warehouse.execute(f"ANALYZE public.{table}")
    join = "EXPLAIN SELECT a.k, a.v, b.w FROM public.mj_a a JOIN public.mj_b b ON a.k = b.k ORDER BY a.k"
    plan = "\n".join(warehouse.query(join).iloc[:, 0])
    parts = urlsplit(warehouse_url)
    con = psycopg2.connect(host=parts.hostname, port=parts.port, user=unquote(parts.username or ""),
                           password=unquote(parts.password or ""), dbname=parts.path.lstrip("/"))
    try:
        with con.cursor() as cur:
            cur.execute(join)
            plain = "\n".join(row[0] for row in cur.fetchall())
    finally:
        con.close()
    assert "Merge Join" in plain, plain
    assert "Merge Join" not in plan and "Hash Join" in plan, plan


def test_setup_drops_an_index_no_query_uses_any_more(warehouse_url: str) -> None:
    """okr_raw's index on checkin_id (every query matches trim(checkin_id)) is retired: a warehouse
    made by an earlier version loses it at the next setup(). PostgreSQL keeps the index it still
    uses; the embedded DuckDB keeps no secondary index (its zone maps serve the range reads)."""
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    warehouse.execute('CREATE INDEX "okr_raw_checkin_id_idx" ON "okr_raw"."okr_raw" ("checkin_id")')
    listing = ("SELECT index_name AS name FROM duckdb_indexes() WHERE table_name = 'okr_raw'"
               if warehouse_url.startswith("duckdb") else
               "SELECT indexname AS name FROM pg_indexes WHERE schemaname = 'okr_raw' AND tablename = 'okr_raw'")
    assert "okr_raw_checkin_id_idx" in set(warehouse.query(listing)["name"])
    warehouse.setup()
    warehouse.setup()  # idempotent once it is gone
    names = set(warehouse.query(listing)["name"])
    embedded = warehouse_url.startswith("duckdb")
    assert "okr_raw_checkin_id_idx" not in names and ("okr_raw_partition_date_idx" in names) is not embedded
    if embedded:  # a DuckDB warehouse made by an earlier version loses its secondary indexes too
        warehouse.execute('CREATE INDEX "okr_processed_checkin_date_idx" ON "okr_processed"."okr_processed" '
                          '("checkin_date")')
        warehouse.setup()
        assert warehouse.query("SELECT count(*) AS n FROM duckdb_indexes()")["n"].iloc[0] == 0


_LAND_SCRIPT = textwrap.dedent("""
    import datetime as dt, sys, time
    from okr_assets.resources import WarehouseResource
    from okr_assets_tests.resources.test_warehouse import _raw_rows
    url, start, stop, tag, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    frames = [_raw_rows(range(i, min(i + 500, stop)), tag) for i in range(start, stop, 500)]
    time.sleep(max(0.0, go - time.time()))  # both writers start together
    warehouse = WarehouseResource(url=url)
    print(sum(warehouse.land_raw(f, dt.date(2024, 1, 1), run_id=tag).inserted for f in frames))
""")


def test_two_concurrent_landings_add_every_row_once(warehouse_url: str, tmp_path: Path) -> None:
    """Two processes land overlapping batches at the same moment (as two landing runs over the
    same Kafka range or the same files would): every key lands once, raw_id stays unique."""
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    go = time.time() + 4
    repo = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", _LAND_SCRIPT, warehouse_url, str(a), str(b), tag, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo)
             for a, b, tag in ((0, 3000, "run-a"), (1500, 4500, "run-b"))]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    inserted = [int(out.strip()) for out, _ in outputs]
    assert sum(inserted) == 4500 and min(inserted) >= 1500  # the overlap landed once, by either run
    table = warehouse.query("SELECT raw_id, source_key FROM okr_raw.okr_raw")
    assert len(table) == 4500 and table["source_key"].is_unique and table["raw_id"].is_unique


_KILLED_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from okr_assets.resources import WarehouseResource
    from okr_assets.resources import warehouse_backends as backends

    url, flag = sys.argv[1], Path(sys.argv[2])
    real_load = {cls: cls.load for cls in (backends.DuckDBBackend, backends.PostgresBackend)}

    def load_then_hang(self, con, qualified, columns, frame):
        real_load[type(self)](self, con, qualified, columns, frame)  # old rows deleted, new rows written ...
        flag.write_text("in the middle")
        time.sleep(600)                                                # ... and the process dies here

    for cls in real_load:
        cls.load = load_then_hang
    warehouse = WarehouseResource(url=url)
    frame = warehouse.query("SELECT * FROM okr_processed.okr_rejects").assign(reason="replaced")
    warehouse.replace_table("okr_rejects", frame)
""")


def test_a_writer_killed_mid_replacement_leaves_the_old_rows(warehouse_url: str, tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    rejects = pd.DataFrame({
        "raw_id": range(1, 7), "source": "file", "source_ref": "f.csv:2",
        "partition_date": pd.Timestamp("2025-07-10"),
        "reason": "missing_required", "message": "org_id is empty", "ingested_at": pd.Timestamp.now(tz="UTC"),
    })
    warehouse.append("okr_rejects", rejects)
    before = warehouse.query("SELECT * FROM okr_processed.okr_rejects ORDER BY raw_id")
    assert len(before) == 6

    flag = tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SCRIPT, warehouse_url, str(flag)],
                            cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:] if proc.stderr else "writer exited early"
        assert time.monotonic() < deadline, "the writer never reached the middle of the replacement"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no rollback: like an OOM kill or a lost node
    proc.wait(timeout=30)

    after = WarehouseResource(url=warehouse_url, lock_timeout_seconds=30).query(
        "SELECT * FROM okr_processed.okr_rejects ORDER BY raw_id")
    pd.testing.assert_frame_equal(after, before)
    assert (after["reason"] == "missing_required").all()
    assert dt.date(2025, 7, 10) == after["partition_date"][0].date()


_HOLD_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from okr_assets.resources import WarehouseResource

    url, held, release = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    with WarehouseResource(url=url).exclusive("okr_processed"):
        held.write_text("held")
        while not release.exists():
            time.sleep(0.05)
""")


def test_exclusive_blocks_exclude_each_other_across_processes(warehouse_url: str, tmp_path: Path) -> None:
    """What keeps two refreshes of okr_processed (a Kafka trickle run and a refresh run) from
    interleaving their reads and commits: the second waits until the first has left its block."""
    import threading

    warehouse = WarehouseResource(url=warehouse_url, lock_timeout_seconds=60)
    warehouse.setup()
    held, release = tmp_path / "held", tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_SCRIPT, warehouse_url, str(held), str(release)],
                            cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not held.exists():
            assert proc.poll() is None, proc.stderr.read()[-2000:] if proc.stderr else "holder exited early"
            assert time.monotonic() < deadline, "the other process never entered its block"
            time.sleep(0.05)
        waits: list[str] = []
        entered: list[float] = []

        def enter() -> None:
            with warehouse.exclusive("okr_processed", on_wait=waits.append):
                entered.append(time.monotonic())

        thread = threading.Thread(target=enter)
        thread.start()
        time.sleep(1.5)
        assert not entered, "entered while another process held the block"
        released_at = time.monotonic()
        release.write_text("go")
        thread.join(timeout=60)
        assert entered and entered[0] >= released_at
        assert proc.wait(timeout=30) == 0
        if warehouse_url.startswith("postgresql"):
            assert len(waits) == 1 and "writer lock" in waits[0] and "password" not in waits[0].lower()
    finally:
        proc.kill()


# Any Unicode text landing can produce: no NUL, no lone surrogate (both are rejected before landing).
storable_text = st.one_of(st.none(), st.text(alphabet=st.characters(exclude_characters="\x00",
                                                                    exclude_categories=("Cs",)), max_size=60))


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(storable_text, min_size=1, max_size=20))
def test_any_text_round_trips_through_the_bulk_load(warehouse_url: str, comments: list[str | None]) -> None:
    """Fuzzed text (any Unicode but NUL, which landing never produces) comes back unchanged."""
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    frame = _raw_rows(range(len(comments))).assign(comment=comments, run_id=uuid.uuid4().hex)
    frame["source_key"] = frame["source_key"] + ":" + frame["run_id"]
    warehouse.land_raw(frame, FIRST)
    back = warehouse.query("SELECT comment FROM okr_raw.okr_raw WHERE run_id = ? ORDER BY raw_id",
                           [frame["run_id"][0]])
    assert [None if pd.isna(v) else v for v in back["comment"]] == comments


def test_a_range_reads_its_rows_and_the_other_versions_of_their_checkins(warehouse_url: str) -> None:
    """``range_candidates``: the rows of the range (``_mine``), and of the other partitions only
    the versions of the range's check-ins (their ids compared trimmed); rows without an id and
    other check-ins stay out."""
    from okr_assets.lib.validation import range_candidates

    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    rows = _raw_rows(range(6))
    rows["checkin_id"] = ["a", " b ", None, "b", "c", "a"]
    # rows 0-2 check in on 2025-07-05, rows 3-5 carry no check-in time (routed to their ingest day, 07-10)
    rows.loc[:2, "checkin_at"] = "2025-07-05T09:00:00Z"
    warehouse.land_raw(rows, FIRST)
    raw = warehouse.table("okr_raw")
    got = warehouse.fetch(range_candidates(raw, dt.date(2025, 7, 5), dt.date(2025, 7, 6))
                          .select("source_key", "_mine"))
    assert dict(zip(got["source_key"], got["_mine"].astype(bool), strict=True)) == {
        "kafka:t:0:0": True, "kafka:t:0:1": True, "kafka:t:0:2": True,  # the range's own rows
        "kafka:t:0:3": False, "kafka:t:0:5": False}  # b and a landed on 07-10; c is another check-in
