"""`make demo`'s command: generate, land, process every partition, and a summary that adds up, on
the embedded DuckDB warehouse and on a PostgreSQL one named by ``OKR_WAREHOUSE_URL``."""

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from okr_assets_tests.conftest import BIN, REPO
from okr_assets_tests.postgres import PostgresServer

# Whole-stack tests share one xdist worker: they start servers and time them, so they run one
# after another while the other worker takes the in-process tests.
pytestmark = pytest.mark.xdist_group("stack")

DEMO = [str(BIN / "okr-assets"), "demo", "--teams", "3", "--cycles", "3", "--bad-share", "0.05"]


def _demo_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "okr"
    env = {**os.environ, "OKR_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("OKR_WAREHOUSE_URL", None)
    return env


def _assert_summary(out: str) -> dict[str, int]:
    """The demo's summary: every table filled, the accounting adds up, checks, model and drift
    reported. Returns the rows per table."""
    rows = {m[0]: int(m[1].replace(",", "")) for m in re.findall(r"^(okr_\w+)\s+([\d,]+) rows$", out, re.M)}
    assert set(rows) == {"okr_raw", "okr_processed", "okr_rejects", "okr_curated", "okr_features",
                         "okr_predictions", "okr_drift_report"}
    assert all(n > 0 for n in rows.values()), rows
    accounting = re.search(r"landed ([\d,]+) = accepted ([\d,]+) \+ rejected ([\d,]+) "
                           r"\+ deduplicated ([\d,]+)\s+-> OK", out)
    assert accounting, out
    landed, accepted, rejected, dedup = (int(g.replace(",", "")) for g in accounting.groups())
    assert accepted + rejected + dedup == landed == rows["okr_raw"]
    assert dedup > 0  # overlapping re-exports
    assert "FAILED" not in out and re.search(r"okr_curated: ok, 1/1 checks passed", out)
    assert len(re.findall(r"^  \w+\s+\d+$", out, re.M)) >= 10  # rejects of many reasons
    model = re.search(r"^model: \w+ v(\d+), holdout \d{4}-Q\d ROC-AUC ([\d.]+), Brier [\d.]+; "
                      r"champion version (\d+)$", out, re.M)
    assert model and float(model.group(2)) > 0.6 and model.group(1) == model.group(3) == "1"
    assert re.search(r"^drift: (none|DETECTED in .+) \(model output shift: (True|False)\)$", out, re.M)
    return rows


def test_demo_end_to_end(tmp_path: Path) -> None:
    env = _demo_env(tmp_path)
    proc = subprocess.run(DEMO, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    rows = _assert_summary(out)

    # Running it again adds to the landing folder without duplicating anything.
    again = subprocess.run(DEMO, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:]
    assert f"okr_raw         {rows['okr_raw']:>9,} rows" in again.stdout


@pytest.fixture
def own_warehouse(postgres: PostgresServer) -> Iterator[tuple[str, str]]:
    """(URL, password) of a fresh database owned by a role of its own, as a deployment has it;
    the password is random, so finding it in any output means it leaked."""
    role, password = f"okr_demo_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    admin = psycopg2.connect(postgres.url(postgres.admin_db))
    admin.autocommit = True
    database = postgres.create_database()
    with contextlib.closing(admin) as con, con.cursor() as cur:
        try:
            # Names of ours (a prefix and hex digits); the password travels as a parameter.
            cur.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
            cur.execute(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
            yield f"postgresql://{role}:{password}@{postgres.host}:{postgres.port}/{database}", password
        finally:
            postgres.drop_database(database)
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_demo_on_postgresql(tmp_path: Path, own_warehouse: tuple[str, str]) -> None:
    url, password = own_warehouse
    env = {**_demo_env(tmp_path), "OKR_WAREHOUSE_URL": url}
    proc = subprocess.run(DEMO, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert password not in proc.stdout and password not in proc.stderr
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = _assert_summary(proc.stdout)

    # The rows are in that database, and `okr-assets summary` reads them there too.
    with contextlib.closing(psycopg2.connect(url)) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM okr_raw.okr_raw")
        assert cur.fetchone()[0] == rows["okr_raw"]
    summary = subprocess.run([str(BIN / "okr-assets"), "summary"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    assert summary.returncode == 0, summary.stdout[-3000:] + summary.stderr[-3000:]
    assert f"okr_raw         {rows['okr_raw']:>9,} rows" in summary.stdout
    assert password not in summary.stdout and password not in summary.stderr
