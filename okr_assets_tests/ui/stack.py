"""The deployed shape of Dagster, started for browser tests: a code server, dagster-webserver and
dagster-daemon (as in docker-compose.yml) on free ports, against a temporary OKR_HOME that
`okr-assets demo` has filled (landed files, every partition processed, a champion model, a drift
report)."""

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterInstance

from okr_assets.instance import ensure_dagster_home
from okr_assets_tests.conftest import BIN, REPO
from okr_assets_tests.processes import free_port, graphql, start, stop, wait_until

# The two sensors the tests watch; everything else that would launch runs is stopped before the
# daemon starts, so that the only runs are the ones the tests launch (and one no-op landing run):
# with a fresh cursor okr_refresh_sensor would re-cascade all the demo's data on 2 cores.
WATCHED_SENSORS = ("okr_landing_sensor", "okr_kafka_sensor")
KAFKA_MESSAGES = 6

_INSTIGATORS = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name
  sensors { id name sensorState { status } } schedules { id name scheduleState { status } } } } } }"""
_STOP_SENSOR = "mutation($id: String!) { stopSensor(id: $id) { __typename } }"
_STOP_SCHEDULE = "mutation($id: String!) { stopRunningSchedule(id: $id) { __typename } }"


@dataclass
class UiStack:
    port: int
    home: Path
    logs: Path
    ingest_topic: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.port, query, variables)

    def assert_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {proc.returncode}\n{tail}")


def _stop_other_instigators(stack: UiStack) -> None:
    [repo] = stack.graphql(_INSTIGATORS)["repositoriesOrError"]["nodes"]
    for sensor in repo["sensors"]:
        if sensor["name"] not in WATCHED_SENSORS:
            stack.graphql(_STOP_SENSOR, {"id": sensor["id"]})
    for schedule in repo["schedules"]:
        stack.graphql(_STOP_SCHEDULE, {"id": schedule["id"]})
    [repo] = stack.graphql(_INSTIGATORS)["repositoriesOrError"]["nodes"]
    running = {s["name"] for s in repo["sensors"] + repo["schedules"]
               if (s.get("sensorState") or s.get("scheduleState"))["status"] == "RUNNING"}
    assert running == set(WATCHED_SENSORS), running


def _produce(bootstrap: str, topic: str, count: int) -> None:
    """A few valid check-ins on the stack's own topic, so the Kafka sensor has a range to land."""
    from okr_assets.lib.stream import CheckinStream
    from okr_assets.resources import KafkaResource

    kafka = KafkaResource(bootstrap_servers=bootstrap, ingest_topic=topic, updates_topic=f"{topic}_updates")
    kafka.ensure_topics(partitions=1)
    stream = CheckinStream(seed=3, bad_share=0.0)
    with kafka.producer() as producer:
        for _ in range(count):
            key, value, _bad = stream.next_message()
            producer.send(topic, key=key, value=value)


@contextlib.contextmanager
def ui_stack(tmp: Path, kafka_bootstrap: str) -> Iterator[UiStack]:
    home, logs = tmp / "okr", tmp / "logs"
    (home / "landing").mkdir(parents=True)
    logs.mkdir()
    ensure_dagster_home(home / "dagster")  # the embedded instance config, as `make run` writes it
    # Create the SQLite storages once here: processes that create them at the same moment can
    # stamp two schema versions into one database (the daemon then refuses to start).
    DagsterInstance.from_config(str(home / "dagster")).dispose()
    topic = f"okr_raw_ingest_ui_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OKR_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "OKR_KAFKA_INGEST_TOPIC": topic,
           "OKR_KAFKA_UPDATES_TOPIC": f"{topic}_updates", "MLFLOW_TRACKING_URI": "",
           "OKR_LANDING_SENSOR_INTERVAL_SECONDS": "5", "OKR_KAFKA_SENSOR_INTERVAL_SECONDS": "5"}
    env.pop("OKR_WAREHOUSE_URL", None)  # the embedded DuckDB warehouse under OKR_HOME
    code_port, web_port = free_port(), free_port()
    workspace = tmp / "workspace.yaml"
    workspace.write_text("load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
                         f"      port: {code_port}\n      location_name: okr_assets\n")
    stack = UiStack(port=web_port, home=home, logs=logs, ingest_topic=topic)

    def launch(name: str, argv: list[str]) -> subprocess.Popen:
        stack.procs[name] = start(argv, env=env, log=logs / f"{name}.log", cwd=REPO)
        return stack.procs[name]

    try:
        # The demo fills OKR_HOME while the code server and webserver load (2 cores: overlap).
        demo = launch("demo", [str(BIN / "okr-assets"), "demo", "--teams", "3", "--cycles", "3",
                               "--bad-share", "0.05"])
        launch("code_server", [str(BIN / "dagster"), "code-server", "start", "-m", "okr_assets.definitions",
                               "-h", "127.0.0.1", "-p", str(code_port), "--location-name", "okr_assets"])
        web = launch("webserver", [str(BIN / "dagster-webserver"), "-w", str(workspace),
                                   "-h", "127.0.0.1", "-p", str(web_port)])
        wait_until(lambda: stack.graphql("{ assetNodes { id } }")["assetNodes"], 180,
                   "the Dagster webserver and its code location", proc=web, log=logs / "webserver.log")
        stack.graphql("mutation { setNuxSeen }")  # no "join the community" pop-up over the graph
        _stop_other_instigators(stack)
        wait_until(lambda: demo.poll() is not None, 300, "okr-assets demo", interval=0.5)
        assert demo.returncode == 0, (logs / "demo.log").read_text(errors="replace")[-4000:]
        del stack.procs["demo"]
        _produce(kafka_bootstrap, topic, KAFKA_MESSAGES)
        launch("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])
        yield stack
    finally:
        for proc in reversed(stack.procs.values()):
            stop(proc)
