"""The equivalence fixture: fixed inputs through the whole table pipeline, and its outputs.

``fixtures/equivalence/input`` holds two landing rounds of CSV exports and a list of Kafka
messages; ``fixtures/equivalence/expected`` holds okr_processed, okr_rejects, okr_curated and
okr_features as the pandas implementation built them from those inputs, normalised (below) so
they can be compared across engines and runs. ``test_equivalence`` runs the inputs through the
pipeline on each engine and compares its tables with ``expected``.

The inputs cover every row-level and file-level reject reason, Kafka payload failures, check-ins
landing late for closed cycles, newer valid versions (deduplicated) and newer invalid versions
(rejected, the older valid one kept). Every cycle in them ended before 2026, so nothing depends
on the day the test runs (the curated ``cycle_closed`` and the features' weeks stay the same).

Both folders are written once, by ``python -m okr_assets_tests.equivalence --write`` (it needs the
test broker, so it runs the test with ``OKR_WRITE_EQUIVALENCE=1``). Rewriting ``expected`` from
new code defeats its purpose: do it only for a deliberate change of the contract, and say so in
the commit.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from pathlib import Path

import pandas as pd

from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.lib.messages import checkin_to_message

FIXTURE = Path(__file__).parent / "fixtures" / "equivalence"
INPUT, EXPECTED = FIXTURE / "input", FIXTURE / "expected"
TABLES = ("okr_processed", "okr_rejects", "okr_curated", "okr_features")
SEED, TEAMS, CYCLES, BAD_SHARE = 11, 2, 3, 0.05
AS_OF = dt.datetime(2025, 11, 15, tzinfo=dt.UTC)

# Rows are compared in this order; the columns left out depend on when or in which order the
# rows were landed (raw_id, ingested_at) or curated (okr_curated.as_of), not on the inputs.
SORT_KEYS = {
    "okr_processed": ["checkin_id"],
    "okr_rejects": ["source_ref", "reason", "checkin_id"],
    "okr_curated": ["key_result_id", "cycle_id"],
    "okr_features": ["key_result_id", "cycle_id", "week"],
}
VOLATILE = {
    "okr_processed": ["raw_id", "ingested_at"],
    "okr_rejects": ["raw_id", "ingested_at"],
    "okr_curated": ["as_of"],
    "okr_features": [],
}
TOPIC = "<topic>"


# ---------------------------------------------------------------------------------------------
# Inputs (written once; the test reads the files)
# ---------------------------------------------------------------------------------------------

def _csv(rows: list[dict]) -> bytes:
    return pd.DataFrame(rows).reindex(columns=list(CHECKIN_COLUMNS)).to_csv(
        index=False, lineterminator="\n").encode("utf-8")


def build_inputs() -> tuple[dict[str, bytes], dict[str, bytes], list[tuple[str, bytes]]]:
    """(round 1 files, round 2 files, Kafka messages as (key, value)) from the generator and
    hand-made edge cases, deterministic."""
    from okr_assets.lib.generator import GeneratorConfig, generate

    data = generate(GeneratorConfig(seed=SEED, teams=TEAMS, cycles=CYCLES, bad_share=BAD_SHARE, as_of=AS_OF))
    first = {name: frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
             for name, frame in data.files.items()}
    rows = pd.concat(data.files.values(), ignore_index=True).astype("string").fillna("")
    good = rows[~rows["checkin_id"].str.contains("-bad-")].to_dict("records")
    oldest = [r for r in good if r["cycle_id"] == good[0]["cycle_id"]]

    # Round 2, landed after round 1 was processed.
    newer = [{**r, "value": str(float(r["value"]) + 1.5), "confidence": "3", "comment": "re-exported"}
             for r in good[:: len(good) // 12][:12]]
    broken = [{**r, "weight": "7", "comment": "broken re-export"} for r in good[5:: len(good) // 8][:8]]
    late = [{**r, "checkin_id": f"late-{i:03d}", "comment": "late",
             "checkin_at": (pd.Timestamp(r["checkin_at"]) + pd.Timedelta(hours=3)).isoformat()}
            for i, r in enumerate(oldest[:10])]
    base = good[0]
    edge = [
        {**base, "checkin_id": "edge-future", "checkin_at": "2099-01-01T00:00:00Z"},
        {**base, "checkin_id": "edge-early", "checkin_at": "2023-06-01T09:00:00+02:00"},
        {**base, "checkin_id": "edge-offset", "checkin_at": "2025-05-02T23:30:00-04:00"},  # next day in UTC
        {**base, "checkin_id": "edge-enum", "status": " On-Track ", "direction": "INCREASE"},
        {**base, "checkin_id": "edge-spaces", "team_id": f"  {base['team_id']} ", "comment": "  padded  "},
    ]
    second = {
        "reexport_newer_valid.csv": _csv(newer),
        "reexport_newer_invalid.csv": _csv(broken),
        "late_checkins.csv": _csv(late),
        "edge_cases.csv": _csv(edge),
        # a row with a field too many and one with a field too few
        "malformed_rows.csv": _csv(good[:3]) + b"a,b,c\n" + _csv(good[3:4]).split(b"\n", 1)[1].rstrip(b"\n")
        + b",extra\n",
        "windows_1252.csv": _csv([{**good[7], "checkin_id": "edge-cp1252", "comment": "café, naïve"}]).decode(
            "utf-8").encode("cp1252"),
        "with_bom.csv": b"\xef\xbb\xbf" + _csv([{**good[8], "checkin_id": "edge-bom"}]),
        "not_a_csv.csv": bytes(range(256)) * 4,
        "header_only.csv": _csv([]),
    }

    open_rows = [r for r in good if r["cycle_id"] == good[-1]["cycle_id"]][:20]
    messages: list[tuple[str, bytes]] = []
    for i, r in enumerate(open_rows):
        row = {**r, "checkin_id": f"kafka-{i:03d}", "comment": "from kafka"}
        messages.append((r["key_result_id"], checkin_to_message(
            row, str(uuid.UUID(int=i + 1)), (pd.Timestamp(r["checkin_at"]) + pd.Timedelta(seconds=1)).isoformat())))
    messages.append((newer[0]["key_result_id"], checkin_to_message(  # a newer version of a file check-in
        {**newer[0], "value": str(float(newer[0]["value"]) + 1)}, str(uuid.UUID(int=900)), "2025-11-14T00:00:00Z")))
    messages += [
        ("bad", b"{not json"),
        ("bad", b"\xff\xfe\xfa"),
        ("bad", b"[1, 2]"),
        ("bad", json.dumps({"schema_version": "9.9", "checkin_id": "x"}).encode()),
        ("bad", checkin_to_message({**open_rows[0], "checkin_id": "kafka-envelope"}, "not-a-uuid", "yesterday")),
        ("bad", checkin_to_message({**open_rows[0], "checkin_id": "kafka-nul", "comment": "a\u0000b"},
                                   str(uuid.UUID(int=901)), "2025-11-14T00:00:00Z")),
        ("bad", checkin_to_message({**open_rows[0], "checkin_id": "kafka-conf", "confidence": "11"},
                                   str(uuid.UUID(int=902)), "2025-11-14T00:00:00Z")),
    ]
    return first, second, messages


def write_inputs() -> None:
    first, second, messages = build_inputs()
    for name, files in (("round1", first), ("round2", second)):
        folder = INPUT / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, data in files.items():
            (folder / file).write_bytes(data)
    lines = [json.dumps({"key": k, "value_base64": base64.b64encode(v).decode()}) for k, v in messages]
    (INPUT / "kafka_messages.jsonl").write_text("\n".join(lines) + "\n")


def read_inputs() -> tuple[dict[str, bytes], dict[str, bytes], list[tuple[str, bytes]]]:
    rounds = [{p.name: p.read_bytes() for p in sorted((INPUT / name).iterdir())} for name in ("round1", "round2")]
    messages = [(m["key"], base64.b64decode(m["value_base64"]))
                for m in map(json.loads, (INPUT / "kafka_messages.jsonl").read_text().splitlines())]
    return rounds[0], rounds[1], messages


# ---------------------------------------------------------------------------------------------
# Outputs, normalised
# ---------------------------------------------------------------------------------------------

_INGESTION_TIME = re.compile(r"after ingestion at \S+")


def normalised(table: str, frame: pd.DataFrame, topic: str) -> pd.DataFrame:
    """``frame`` as comparable text: volatile columns dropped, timestamps as UTC ISO text, the
    test's topic name replaced, floats at full precision, rows in key order."""
    out = frame.drop(columns=VOLATILE[table]).copy()
    for col in out.columns:
        series = out[col]
        if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(series):
            stamps = pd.to_datetime(series, utc=True)
            out[col] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").where(stamps.notna())
        elif pd.api.types.is_float_dtype(series):
            out[col] = series.map(lambda v: repr(float(v)) if pd.notna(v) else None)
        else:
            out[col] = series.map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
                                  else str(v))
    if "source_ref" in out:
        out["source_ref"] = out["source_ref"].str.replace(topic, TOPIC, regex=False)
    if table == "okr_rejects":
        out["message"] = out["message"].str.replace(_INGESTION_TIME, "after ingestion at <ingested_at>", regex=True)
        # A reject without a parseable check-in time is routed to the day it landed.
        landed = pd.to_datetime(frame["ingested_at"], utc=True).dt.strftime("%Y-%m-%d")
        out["partition_date"] = out["partition_date"].where(out["partition_date"].str[:10] != landed,
                                                            "<landing day>")
    return out.sort_values(SORT_KEYS[table], kind="stable").reset_index(drop=True)


def _read_csv(source: object) -> pd.DataFrame:
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])


def read_expected(table: str) -> pd.DataFrame:
    return _read_csv(EXPECTED / f"{table}.csv")


def as_stored(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as ``read_expected`` returns it once written (empty text and null read alike)."""
    import io

    return _read_csv(io.StringIO(frame.to_csv(index=False, lineterminator="\n")))


def write_expected(tables: dict[str, pd.DataFrame]) -> None:
    EXPECTED.mkdir(parents=True, exist_ok=True)
    for table, frame in tables.items():
        frame.to_csv(EXPECTED / f"{table}.csv", index=False, lineterminator="\n")


if __name__ == "__main__":
    import os
    import subprocess
    import sys

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m okr_assets_tests.equivalence --write")
    write_inputs()
    sys.exit(subprocess.call(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-q",
         "okr_assets_tests/defs/test_equivalence.py::test_the_pipeline_builds_the_expected_tables[duckdb]"],
        env={**os.environ, "OKR_WRITE_EQUIVALENCE": "1"}))
