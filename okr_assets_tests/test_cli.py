"""The ``okr-assets`` commands run in-process: `generate` writes the exports and the ground truth
next to them; `summary` and `alerts` read the warehouse named by ``OKR_WAREHOUSE_URL``."""

import json
import logging
import re
from pathlib import Path

import pandas as pd

from okr_assets.cli import main
from okr_assets.defs.partitions import FIRST_PARTITION
from okr_assets.lib.alerts import check_failure_alert, run_failure_alert
from okr_assets.resources import AlertsResource, WarehouseResource


def test_generate_writes_csvs_and_reference_probabilities(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--seed", "3", "--teams", "2", "--cycles", "3", "--out", str(tmp_path),
                 "--as-of", "2026-11-15T00:00:00+00:00", "--bad-share", "0.05"]) == 0
    assert "okr_reference_probabilities_s3.jsonl" in capsys.readouterr().out
    assert len(list(tmp_path.glob("okr_checkins_s3_*.csv"))) >= 7
    truth = json.loads((tmp_path / "okr_ground_truth_s3.json").read_text())
    assert truth["header"]["seed"] == 3 and truth["key_results"]
    probabilities = pd.read_json(tmp_path / "okr_reference_probabilities_s3.jsonl", lines=True)
    assert {"key_result_id", "cycle_id", "week", "oracle_p", "bayes_p"} <= set(probabilities.columns)
    assert probabilities[["oracle_p", "bayes_p"]].stack().between(0, 1).all()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_summary_reads_the_configured_warehouse(warehouse_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OKR_WAREHOUSE_URL", warehouse_url)  # an EnvVar in the resources, as deployed
    warehouse = WarehouseResource(url=warehouse_url)
    warehouse.setup()
    warehouse.land_raw(pd.DataFrame({  # c1 twice: deduplicated once a newer version is accepted
        "checkin_id": ["c1", "c1", "c2"], "source": "kafka", "source_ref": ["t/0/1", "t/0/2", "t/0/3"],
        "source_key": ["kafka:t:0:1", "kafka:t:0:2", "kafka:t:0:3"],
        "ingested_at": pd.Timestamp("2025-07-10T12:00:00Z"), "run_id": "r1"}), FIRST_PARTITION)
    # Landed but never processed: nothing accepted supersedes c1's older version, the accounting does
    # not add up, and the exit code says so.
    assert main(["summary"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^okr_raw\s+3 rows$", out, re.M) and re.search(r"^okr_processed\s+0 rows$", out, re.M)
    assert "landed 3 = accepted 0 + rejected 0 + deduplicated 0  -> MISMATCH" in out


def test_alerts_lists_the_latest_alerts_of_the_configured_warehouse(warehouse_url: str, monkeypatch,
                                                                     capsys) -> None:
    monkeypatch.setenv("OKR_WAREHOUSE_URL", warehouse_url)
    assert main(["alerts"]) == 0
    assert capsys.readouterr().out.strip() == "no alerts"

    failed_run = run_failure_alert("r" * 36, "__ASSET_JOB", "boom", ["okr_curated"], ["okr_curated"])
    failed_check = check_failure_alert(42, "r" * 36, "okr_processed", "okr_processed_schema", "ERROR", "3 failures")
    AlertsResource().raise_alerts([failed_run, failed_check], WarehouseResource(url=warehouse_url),
                                  logging.getLogger("okr_assets_tests.cli"))
    assert main(["alerts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["raised_at", "kind", "severity", "summary", "webhook_status"]
    assert [line.split()[2] for line in lines[1:]] == ["check_failure", "run_failure"]  # newest first
    assert failed_check.summary in lines[1] and failed_run.summary in lines[2]
    assert main(["alerts", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
