"""`make demo`'s command: generate, land, process every partition, and a summary that adds up."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from okr_assets_tests.conftest import BIN, REPO

# Whole-stack tests share one xdist worker: they start servers and time them, so they run one
# after another while the other worker takes the in-process tests.
pytestmark = pytest.mark.xdist_group("stack")


def test_demo_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "okr"
    env = {**os.environ, "OKR_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("OKR_WAREHOUSE_URL", None)
    args = [str(BIN / "okr-assets"), "demo", "--teams", "3", "--cycles", "3", "--bad-share", "0.05"]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]

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

    # Running it again adds to the landing folder without duplicating anything.
    again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:]
    assert f"okr_raw         {rows['okr_raw']:>9,} rows" in again.stdout
