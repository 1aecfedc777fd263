"""Alert ids, messages and table rows: pure functions, no Dagster."""

import datetime as dt
import json

import pandas as pd
import pytest

from okr_assets.lib.alerts import (
    Alert,
    alerts_frame,
    check_failure_alert,
    drift_alert,
    drift_signature,
    freshness_alert,
    run_failure_alert,
    slack_payload,
)
from okr_assets.lib.schemas import Alerts

RUN = "0123abcd-0000-0000-0000-000000000000"


def test_alert_ids_come_from_the_event_so_a_repeat_has_the_same_id() -> None:
    assert run_failure_alert(RUN, "job", "boom").alert_id == f"run_failure:{RUN}"
    assert check_failure_alert(7, RUN, "okr_curated", "okr_curated_schema", "ERROR").alert_id \
        == "check_failure:okr_curated:okr_curated_schema:7"
    assert drift_alert(9, RUN, "2", ["progress"], True, True).alert_id == "drift:9"
    assert freshness_alert(11, "okr_features", "PASS", None, None).alert_id == "freshness:okr_features:11"
    assert run_failure_alert(RUN, "job", "boom") == run_failure_alert(RUN, "job", "boom")
    assert check_failure_alert(7, RUN, "a", "c", "ERROR") != check_failure_alert(8, RUN, "a", "c", "ERROR")


def test_summaries_say_what_and_where_in_one_line() -> None:
    failed = run_failure_alert(RUN, "__ASSET_JOB", "ValueError: bad URL\n", ["okr_features"],
                               ["okr_features"], {"okr/trigger": "schedule"})
    assert failed.summary == "Run 0123abcd (okr_features) failed: ValueError: bad URL"
    assert failed.asset_key == "okr_features" and failed.details["tags"] == {"okr/trigger": "schedule"}
    blocked = run_failure_alert(RUN, "__ASSET_JOB", "dagster._core.errors.DagsterAssetCheckFailedError: 1 blocking "
                                "asset check failed with ERROR severity:\nokr_processed: okr_processed_schema\n",
                                assets=["okr_curated", "okr_processed"])
    assert blocked.summary == ("Run 0123abcd (okr_curated, okr_processed) failed: DagsterAssetCheckFailedError: "
                               "1 blocking asset check failed with ERROR severity: okr_processed: okr_processed_schema")
    assert blocked.asset_key is None  # several assets: the summary names them
    check = check_failure_alert(7, RUN, "okr_processed", "okr_processed_schema", "ERROR",
                                "2 failure(s) in okr_processed", "2025-07-10")
    assert check.severity == "error"
    assert check.summary == ("Blocking check okr_processed_schema failed on okr_processed (partition 2025-07-10): "
                             "2 failure(s) in okr_processed")
    assert check_failure_alert(7, RUN, "a", "c", "WARN").severity == "warning"
    drift = drift_alert(9, RUN, "3", ["progress", "confidence"], prediction_shift=False, likely_to_hurt_model=False)
    assert drift.severity == "warning" and "v3" in drift.summary and "progress, confidence" in drift.summary
    assert drift_alert(9, RUN, "3", [], True, True).severity == "error"
    stale = freshness_alert(11, "okr_curated", "PASS", dt.timedelta(hours=13),
                            dt.datetime(2025, 7, 10, 6, 5, tzinfo=dt.UTC))
    assert stale.summary == "okr_curated is stale: last updated 2025-07-10 06:05 UTC (policy: at least every 13 h)"
    assert "never updated" in freshness_alert(1, "x", "UNKNOWN", dt.timedelta(days=3), None).summary
    assert "3 days" in freshness_alert(1, "x", "UNKNOWN", dt.timedelta(days=3), None).summary


def test_drift_is_news_only_when_it_changes() -> None:
    assert drift_signature(False, "1", ["progress"]) is None
    same = drift_signature(True, "1", ["progress", "confidence"])
    assert same == drift_signature(True, "1", ["confidence", "progress"])
    assert drift_signature(True, "1", ["progress"]) != drift_signature(True, "2", ["progress"])  # new champion


def test_slack_payload_has_a_text_fallback_and_escaped_blocks() -> None:
    alert = check_failure_alert(7, RUN, "okr_curated", "okr_curated_schema", "ERROR", "score <0 & >1")
    payload = slack_payload(alert)
    assert payload["text"].startswith(":rotating_light: Blocking check failed (error): ")
    section, context = payload["blocks"]
    assert "score &lt;0 &amp; &gt;1" in section["text"]["text"]
    assert context["elements"][0]["text"] == f"alert `{alert.alert_id}` · asset `okr_curated` · run `{RUN}`"
    linked = slack_payload(alert, ui_url="https://dagster.example.com/")["blocks"][1]["elements"][0]["text"]
    assert "<https://dagster.example.com/assets/okr_curated|okr_curated>" in linked
    assert f"<https://dagster.example.com/runs/{RUN}|run 0123abcd>" in linked
    long = run_failure_alert(RUN, "job", "x" * 10_000)
    assert len(slack_payload(long)["blocks"][0]["text"]["text"]) < 3000
    json.dumps(payload)  # plain JSON


def test_rows_match_the_okr_alerts_model() -> None:
    alerts = [run_failure_alert(RUN, "job", "boom"), freshness_alert(3, "okr_curated", "WARN", None, None)]
    frame = alerts_frame(alerts, pd.Timestamp("2025-07-10T06:00:00Z"), "pending")
    Alerts.validate(frame)
    assert frame["alert_id"].tolist() == [a.alert_id for a in alerts]
    assert frame["asset_key"].isna().tolist() == [True, False]
    assert json.loads(frame["details"][0])["job_name"] == "job"
    assert (frame["webhook_status"] == "pending").all()


def test_unknown_kind_or_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        Alert("x", "meltdown", "error", "s")
    with pytest.raises(ValueError, match="severity"):
        Alert("x", "drift", "fatal", "s")
