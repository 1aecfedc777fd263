"""The embedded Dagster instance config (SQLite under DAGSTER_HOME) is written when missing and
never replaces an existing one; `okr-assets init-home` is what `make run` and `make demo` call."""

import os
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.storage.runs import SqliteRunStorage

from okr_assets.instance import embedded_config, ensure_dagster_home
from okr_assets_tests.conftest import BIN, REPO

LANE_LIMIT = {"key": "okr/lane", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def test_embedded_config_is_written_once_and_uses_sqlite(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    config = ensure_dagster_home(home)
    assert config == home / "dagster.yaml"
    assert config.read_text() == embedded_config()

    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, SqliteRunStorage)
        assert str(home) in instance.run_storage._conn_string  # the runs live under DAGSTER_HOME
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        assert queue.tag_concurrency_limits == [LANE_LIMIT]  # DuckDB has one writer: one run per lane

    config.write_text("telemetry:\n  enabled: false\n")  # a deployment's (or hand-edited) config stays
    ensure_dagster_home(home)
    assert config.read_text() == "telemetry:\n  enabled: false\n"


def test_init_home_command_writes_into_dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "OKR_HOME": str(tmp_path / "okr"), "DAGSTER_HOME": str(tmp_path / "instance")}
    first = subprocess.run([str(BIN / "okr-assets"), "init-home"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=True)
    assert "written" in first.stdout
    assert (tmp_path / "instance" / "dagster.yaml").read_text() == embedded_config()
    again = subprocess.run([str(BIN / "okr-assets"), "init-home"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=True)
    assert "kept" in again.stdout

    monkeypatch.setenv("OKR_HOME", str(tmp_path / "okr"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert ensure_dagster_home() == tmp_path / "okr" / "dagster" / "dagster.yaml"  # default: under OKR_HOME
