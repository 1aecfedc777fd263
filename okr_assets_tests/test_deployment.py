"""The deployment: docker-compose.yml is valid and safe, and the commands it runs work for real,
outside Docker, against PostgreSQL: the Dagster code server, webserver and daemon on the top-level
dagster.yaml land a dropped file and Kafka messages into a PostgreSQL warehouse and keep their
runs in PostgreSQL; the MLflow server runs on a PostgreSQL backend store and serves artifacts."""

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from okr_assets.lib.messages import checkin_to_message
from okr_assets.resources import KafkaResource, WarehouseResource
from okr_assets_tests.conftest import BIN, REPO, checkin, write_csv
from okr_assets_tests.postgres import PostgresServer
from okr_assets_tests.processes import free_port, graphql, port_open, start, stop, wait_until

# Whole-stack tests share one xdist worker: they start servers and time them, so they run one
# after another while the other worker takes the in-process tests.
pytestmark = pytest.mark.xdist_group("stack")

COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {"postgres", "kafka", "mlflow", "code", "webserver", "daemon"}
PUBLISHED = {"webserver": 3000, "mlflow": 5000}  # the web UIs; nothing else leaves the host network
APP_SERVICES = ("code", "webserver", "daemon")
DAGSTER_PG = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


# ---------------------------------------------------------------------------------------------
# docker-compose.yml, as Docker Compose resolves it


def _compose_config(env_file: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed, so docker-compose.yml cannot be validated. Run "
                    "`make system-deps` (as root it installs Debian's docker-compose with apt-get) or "
                    "install it yourself: apt-get install --no-install-recommends docker-compose", pytrace=False)
    # A clean environment: variables of the caller's shell would override the env file.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    return subprocess.run([binary, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def _host_ip(port: object) -> str:
    """The host address of a published port, short ("127.0.0.1:3000:3000/tcp") or long syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip", ""))
    parts = str(port).split(":")
    return parts[0] if len(parts) == 3 else ""


def test_compose_file_is_valid_and_only_publishes_the_uis_on_localhost(tmp_path: Path) -> None:
    done = _compose_config(REPO / ".env.example", tmp_path)
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    services: dict[str, dict[str, Any]] = yaml.safe_load(done.stdout)["services"]

    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        ports = service.get("ports", [])
        assert bool(ports) == (name in PUBLISHED), f"{name} publishes {ports}"
        assert all(_host_ip(p) == "127.0.0.1" for p in ports), f"{name} publishes beyond localhost: {ports}"

    code_env = services["code"]["environment"]
    assert code_env["OKR_WAREHOUSE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in code_env["OKR_WAREHOUSE_URL"]
    assert code_env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert code_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert code_env["OKR_MLFLOW_ARTIFACT_ROOT"].startswith("mlflow-artifacts:")  # through the server
    for name in APP_SERVICES:
        assert set(DAGSTER_PG) <= set(services[name]["environment"]), name
    assert services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")

    # The webserver and daemon reach the code server through the workspace file baked into the image.
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY dagster.yaml /opt/dagster/home/dagster.yaml" in dockerfile
    assert "COPY deploy/workspace.yaml /opt/dagster/workspace.yaml" in dockerfile
    [location] = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())["load_from"]
    assert location["grpc_server"]["host"] == "code"
    assert _option(services["code"]["command"], "-p") == str(location["grpc_server"]["port"])
    for name in ("webserver", "daemon"):
        assert _option(services[name]["command"], "-w") == "/opt/dagster/workspace.yaml"


def test_compose_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = _compose_config(empty, tmp_path)
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr

    # Secrets live only in .env, which neither git nor the image build sees.
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example["POSTGRES_PASSWORD"] == example["OKR_DB_PASSWORD"] == "change-me"


# ---------------------------------------------------------------------------------------------
# The compose file's commands, run outside Docker


def _compose_service(name: str) -> dict[str, Any]:
    """One service as written in docker-compose.yml (commands hold no ${...} variables)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _healthcheck(name: str, port: int | None = None) -> list[str]:
    """A service's compose healthcheck for this machine, where the service listens on ``port``."""
    test = _compose_service(name)["healthcheck"]["test"]
    assert test[0] == "CMD", f"{name}: healthcheck should be exec form"
    argv = test[1:]
    if port is None:
        return _local(argv)
    argv = [arg.replace(f"127.0.0.1:{PUBLISHED.get(name)}", f"127.0.0.1:{port}") for arg in argv]
    return _local(argv, p=str(port)) if "-p" in argv else _local(argv)


def _local(argv: list[str], **values: str) -> list[str]:
    """A compose command for this machine: the venv's executable, option values replaced
    (keyword ``h`` is ``-h``, ``port`` is ``--port``)."""
    out = [str(BIN / argv[0]), *argv[1:]]
    for key, value in values.items():
        flag = f"-{key}" if len(key) == 1 else f"--{key.replace('_', '-')}"
        out[out.index(flag) + 1] = value
    return out


@dataclass(frozen=True)
class DeployDatabases:
    """What deploy/postgres/10-okr-databases.sh created: the application role and its databases."""

    server: PostgresServer
    user: str
    password: str
    dagster_db: str
    warehouse_db: str
    mlflow_db: str

    def url(self, database: str, scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.user}:{self.password}@{self.server.host}:{self.server.port}/{database}"


@pytest.fixture(scope="module")
def deploy_databases(postgres: PostgresServer) -> Iterator[DeployDatabases]:
    """The compose file's init script, run against the test server (as the postgres image would
    on its first start), with fresh names; the role and databases are dropped afterwards."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql (PostgreSQL client) is not installed: apt-get install postgresql-client", pytrace=False)
    suffix = uuid.uuid4().hex[:10]
    names = {"OKR_DB_USER": f"okr_app_{suffix}", "OKR_DB_PASSWORD": uuid.uuid4().hex,
             "DAGSTER_DB": f"dagster_{suffix}", "WAREHOUSE_DB": f"warehouse_{suffix}", "MLFLOW_DB": f"mlflow_{suffix}"}
    env = {"PATH": f"{Path(psql).parent}:{os.environ.get('PATH', '')}", "PGHOST": postgres.host,
           "PGPORT": str(postgres.port), "PGPASSWORD": postgres.password, "POSTGRES_USER": postgres.user, **names}
    script = REPO / "deploy" / "postgres" / "10-okr-databases.sh"
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{script.name} failed: {done.stderr}"
    databases = DeployDatabases(postgres, names["OKR_DB_USER"], names["OKR_DB_PASSWORD"],
                                names["DAGSTER_DB"], names["WAREHOUSE_DB"], names["MLFLOW_DB"])
    try:
        yield databases
    finally:
        for db in (databases.dagster_db, databases.warehouse_db, databases.mlflow_db):
            postgres.drop_database(db)
        admin = psycopg2.connect(postgres.url(postgres.admin_db))
        admin.autocommit = True
        with contextlib.closing(admin) as con, con.cursor() as cur:
            cur.execute(f'DROP ROLE IF EXISTS "{databases.user}"')  # a name of ours: prefix and hex digits


@dataclass(frozen=True)
class Deployment:
    code_port: int
    web_port: int
    okr_home: Path
    dagster_home: Path
    env: dict[str, str]
    databases: DeployDatabases
    kafka: KafkaResource
    processes: dict[str, subprocess.Popen]
    logs: dict[str, Path]


def _deployment_env(tmp_path: Path, db: DeployDatabases, kafka: KafkaResource) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"), "OKR_HOME": str(tmp_path / "okr"),
        "DAGSTER_PG_HOST": db.server.host, "DAGSTER_PG_PORT": str(db.server.port),
        "DAGSTER_PG_USER": db.user, "DAGSTER_PG_PASSWORD": db.password, "DAGSTER_PG_DB": db.dagster_db,
        "OKR_WAREHOUSE_URL": db.url(db.warehouse_db),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "OKR_KAFKA_INGEST_TOPIC": kafka.ingest_topic,
        "OKR_KAFKA_UPDATES_TOPIC": kafka.updates_topic,
        "OKR_LANDING_SENSOR_INTERVAL_SECONDS": "3", "OKR_KAFKA_SENSOR_INTERVAL_SECONDS": "3",
        "OKR_REFRESH_SENSOR_INTERVAL_SECONDS": "3",
        "DAGSTER_EVENT_BATCH_SIZE": "500",  # as docker-compose.yml sets it for every Dagster service
    }


@pytest.fixture
def deployment(tmp_path: Path, deploy_databases: DeployDatabases, kafka: KafkaResource) -> Iterator[Deployment]:
    """The code server, webserver and daemon, started with the compose file's commands, on the
    top-level dagster.yaml (PostgreSQL) and a workspace like deploy/workspace.yaml."""
    env = _deployment_env(tmp_path, deploy_databases, kafka)
    dagster_home, okr_home = Path(env["DAGSTER_HOME"]), Path(env["OKR_HOME"])
    dagster_home.mkdir()
    (okr_home / "landing").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")  # what the Dockerfile does
    code_port, web_port = free_port(), free_port()
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=code_port)
    workspace_file = tmp_path / "workspace.yaml"
    workspace_file.write_text(yaml.safe_dump(workspace))

    commands = {
        "code": _local(_compose_service("code")["command"], h="127.0.0.1", p=str(code_port)),
        "webserver": _local(_compose_service("webserver")["command"], w=str(workspace_file), h="127.0.0.1",
                            p=str(web_port)),
        "daemon": _local(_compose_service("daemon")["command"], w=str(workspace_file)),
    }
    logs = {name: tmp_path / f"{name}.log" for name in commands}
    processes: dict[str, subprocess.Popen] = {}
    try:
        processes["code"] = start(commands["code"], env=env, log=logs["code"], cwd=tmp_path)
        wait_until(lambda: port_open(code_port), 90, "the code server", proc=processes["code"], log=logs["code"])
        for name in ("webserver", "daemon"):
            processes[name] = start(commands[name], env=env, log=logs[name], cwd=tmp_path)
        wait_until(lambda: graphql(web_port, "{ assetNodes { id } }")["assetNodes"], 90,
                   "the webserver serving the code location", proc=processes["webserver"], log=logs["webserver"])
        yield Deployment(code_port, web_port, okr_home, dagster_home, env, deploy_databases, kafka, processes, logs)
    finally:
        for name in ("daemon", "webserver", "code"):
            if name in processes:
                stop(processes[name])


def _runs_in_postgres(db: DeployDatabases, lane: str) -> list[tuple[str, str]]:
    """(run_id, status) of the runs of one lane, read from Dagster's tables in PostgreSQL."""
    with contextlib.closing(psycopg2.connect(db.url(db.dagster_db))) as con, con.cursor() as cur:
        cur.execute("SELECT r.run_id, r.status FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
                    "WHERE t.key = 'okr/lane' AND t.value = %s", (lane,))
        return [(str(run_id), str(status)) for run_id, status in cur.fetchall()]


RUNS_QUERY = """query ($lane: String!) { runsOrError(filter: {tags: [{key: "okr/lane", value: $lane}]}) {
  ... on Runs { results { runId status } } } }"""


def test_deployment_lands_into_postgres_with_runs_in_postgres(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    # The instance the three processes share is the top-level dagster.yaml: PostgreSQL throughout.
    for name in DAGSTER_PG:
        monkeypatch.setenv(name, deployment.env[name])
    with DagsterInstance.from_config(str(deployment.dagster_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.tag_concurrency_limits == [
            {"key": "okr/lane", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1

    # An export dropped into the landing folder (written, then renamed like a copy) ...
    landing = deployment.okr_home / "landing"
    write_csv(landing / "drop.tmp", [checkin(i, f"2025-07-1{i}") for i in range(4)])
    os.replace(landing / "drop.tmp", landing / "drop.csv")
    # ... and check-ins sent to Kafka.
    produced_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with deployment.kafka.producer() as producer:
        for i in range(10, 15):
            producer.send(deployment.kafka.ingest_topic, key=b"kr",
                          value=checkin_to_message(checkin(i, "2025-07-20"), str(uuid.uuid4()), produced_at))

    db = deployment.databases
    processes = deployment.processes
    for lane in ("landing:file", "landing:kafka"):
        wait_until(lambda lane=lane: any(status == "SUCCESS" for _, status in _runs_in_postgres(db, lane)), 120,
                   f"a successful {lane} run recorded in PostgreSQL", interval=2, proc=processes["daemon"],
                   log=deployment.logs["daemon"])
        shown = graphql(deployment.web_port, RUNS_QUERY, {"lane": lane})["runsOrError"]["results"]
        assert {r["runId"] for r in shown} == {run_id for run_id, _ in _runs_in_postgres(db, lane)}

    warehouse = WarehouseResource(url=db.url(db.warehouse_db))
    landed = warehouse.query("SELECT source, count(*) AS n FROM okr_raw.okr_raw GROUP BY source ORDER BY source")
    assert dict(zip(landed["source"], landed["n"].astype(int), strict=True)) == {"file": 4, "kafka": 5}
    # ... and the refresh sensor carries them on into okr_processed, on the same deployment.
    wait_until(lambda: warehouse.query("SELECT count(*) AS n FROM okr_processed.okr_processed")["n"][0] == 9,
               120, "the landed check-ins in okr_processed", interval=2, proc=processes["code"],
               log=deployment.logs["code"])

    # The compose file's healthchecks pass against the running services.
    for name, port in (("code", deployment.code_port), ("webserver", deployment.web_port), ("daemon", None)):
        check = _healthcheck(name, port)
        wait_until(lambda check=check: subprocess.run(check, env=deployment.env, capture_output=True,
                                                      timeout=60).returncode == 0,
                   90, f"the {name} healthcheck {check}", interval=3)


# ---------------------------------------------------------------------------------------------
# MLflow


def test_mlflow_server_command_on_postgres(tmp_path: Path, deploy_databases: DeployDatabases,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The mlflow service's command on a PostgreSQL backend store; the code service's settings
    (tracking URI, mlflow-artifacts: root) put run artifacts into the server's artifact folder."""
    service = _compose_service("mlflow")
    port, artifacts = free_port(), tmp_path / "mlartifacts"
    command = _local(service["command"], host="127.0.0.1", port=str(port), artifacts_destination=str(artifacts))
    db = deploy_databases
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": db.url(db.mlflow_db, scheme="postgresql+psycopg2"),
           # the compose default, with the name the code service uses for the server
           "MLFLOW_SERVER_ALLOWED_HOSTS": f"mlflow:{port},localhost:*,127.0.0.1:*"}
    log = tmp_path / "mlflow.log"
    proc = start(command, env=env, log=log, cwd=tmp_path)
    try:
        import urllib.error
        import urllib.request

        def get(path: str, host: str | None = None) -> int:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host} if host else {})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        wait_until(lambda: get("/health") == 200, 90, "the MLflow server's /health", proc=proc, log=log)
        assert subprocess.run(_healthcheck("mlflow", port), capture_output=True, timeout=60).returncode == 0
        search = "/api/2.0/mlflow/experiments/search?max_results=1"
        assert get(search, host=f"mlflow:{port}") == 200
        assert get(search, host=f"attacker.example:{port}") == 403  # DNS-rebinding protection stays on

        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        code_env = _compose_service("code")["environment"]
        monkeypatch.setenv("OKR_MLFLOW_ARTIFACT_ROOT", code_env["OKR_MLFLOW_ARTIFACT_ROOT"])
        import mlflow

        from okr_assets.resources.mlflow import ensure_experiment

        experiment_id = ensure_experiment("okr_at_risk_deploy_test")
        note = tmp_path / "note.txt"
        note.write_text("hello")
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_artifact(str(note))
        assert [p.name for p in artifacts.rglob("note.txt")] == ["note.txt"]
        with contextlib.closing(psycopg2.connect(db.url(db.mlflow_db))) as con, con.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs")
            assert cur.fetchone()[0] == 1  # the run's metadata is in PostgreSQL
    finally:
        stop(proc)
