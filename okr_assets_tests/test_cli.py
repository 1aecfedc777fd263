"""`okr-assets generate` writes the exports and the ground truth next to them."""

import json
from pathlib import Path

import pandas as pd

from okr_assets.cli import main


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
