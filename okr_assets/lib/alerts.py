"""Alerts: what went wrong, as a stable record and as a Slack-compatible message.

Pure functions, no Dagster and no I/O: the monitoring sensors turn Dagster events into ``Alert``s,
the alerts resource stores and posts them. An alert's id is derived from the event that caused it
(a run id, an event's storage id), so evaluating the same event again yields the same id and the
unique key of ``okr_ops.okr_alerts`` stops it from being raised twice.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from okr_assets.lib.schemas import ALERT_KINDS, Alerts

SEVERITIES = ("warning", "error")
_SLACK_TEXT_LIMIT = 2900  # Slack rejects section texts over 3,000 characters
_ICONS = {"warning": ":warning:", "error": ":rotating_light:"}
_TITLES = {"run_failure": "Run failed", "check_failure": "Blocking check failed",
           "drift": "Significant drift", "freshness": "Asset is stale",
           "data_loss": "Messages lost before landing", "cascade_gap": "Partitions that cannot be refreshed"}


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str
    severity: str
    summary: str
    asset_key: str | None = None
    run_id: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}; expected one of {ALERT_KINDS}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; expected one of {SEVERITIES}")

    def to_json(self) -> dict[str, object]:
        """The alert as JSON-able data (an alert posted while the warehouse was down waits in the
        sensor cursor, as this, until it can be recorded)."""
        return {"alert_id": self.alert_id, "kind": self.kind, "severity": self.severity, "summary": self.summary,
                "asset_key": self.asset_key, "run_id": self.run_id,
                "details": json.loads(json.dumps(dict(self.details), default=str))}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Alert:
        return cls(alert_id=str(data["alert_id"]), kind=str(data["kind"]), severity=str(data["severity"]),
                   summary=str(data["summary"]), asset_key=data.get("asset_key"), run_id=data.get("run_id"),
                   details=dict(data.get("details") or {}))


def _one_line(text: str | None, limit: int = 300) -> str:
    """A message on one line, without the module path of an exception class
    (``dagster._core.errors.DagsterAssetCheckFailedError: ...`` -> ``DagsterAssetCheckFailedError: ...``)."""
    line = " ".join((text or "").split())
    line = re.sub(r"^(?:[A-Za-z_][\w]*\.)+(?=[A-Z]\w*:)", "", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- one builder per kind ---------------------------------------------------------------------------


def run_failure_alert(run_id: str, job_name: str, error: str | None, failed_steps: Sequence[str] = (),
                      assets: Sequence[str] = (), tags: Mapping[str, str] | None = None) -> Alert:
    """A failed run. One alert per run id: a re-execution is a new run and alerts again."""
    target = ", ".join(assets) if assets else job_name
    reason = _one_line(error) or "no error message"
    return Alert(
        alert_id=f"run_failure:{run_id}", kind="run_failure", severity="error", run_id=run_id,
        asset_key=assets[0] if len(assets) == 1 else None,
        summary=f"Run {run_id[:8]} ({target}) failed: {reason}",
        details={"job_name": job_name, "assets": list(assets), "failed_steps": list(failed_steps),
                 "error": (error or "")[:4000], "tags": dict(tags or {})},
    )


def check_failure_alert(storage_id: int, run_id: str, asset_key: str, check_name: str, severity: str,
                        description: str | None = None, partition: str | None = None) -> Alert:
    """A failed blocking asset check: one alert per evaluation event."""
    where = f"{asset_key}" + (f" (partition {partition})" if partition else "")
    return Alert(
        alert_id=f"check_failure:{asset_key}:{check_name}:{storage_id}", kind="check_failure",
        severity="error" if severity.lower() == "error" else "warning", asset_key=asset_key, run_id=run_id,
        summary=f"Blocking check {check_name} failed on {where}: {_one_line(description) or 'no description'}",
        details={"check_name": check_name, "partition": partition, "description": description or "",
                 "event_storage_id": storage_id},
    )


def drift_signature(drift_detected: bool, champion_version: str, drifted_features: Sequence[str]) -> str | None:
    """What a drift report says, as a comparable value: None without drift. A report is news only
    when it differs from the one before (drift appears, other features drift, a new champion still
    drifts); the same drift re-reported by every refresh is not."""
    if not drift_detected:
        return None
    return f"v{champion_version}:{','.join(sorted(drifted_features))}"


def drift_alert(storage_id: int, run_id: str, champion_version: str, drifted_features: Sequence[str],
                prediction_shift: bool, likely_to_hurt_model: bool) -> Alert:
    """Significant (and practically large) drift in a new okr_drift_report."""
    features = ", ".join(drifted_features) or "the predicted risk only"
    hurt = "; the champion's predicted risk moved too" if likely_to_hurt_model else ""
    return Alert(
        alert_id=f"drift:{storage_id}", kind="drift", severity="error" if likely_to_hurt_model else "warning",
        asset_key="okr_drift_report", run_id=run_id,
        summary=f"Significant drift against champion v{champion_version} in: {features}{hurt}",
        details={"champion_version": champion_version, "drifted_features": list(drifted_features),
                 "prediction_shift": prediction_shift, "likely_to_hurt_model": likely_to_hurt_model,
                 "event_storage_id": storage_id},
    )


def freshness_alert(storage_id: int, asset_key: str, previous_state: str, fail_window: dt.timedelta | None,
                    last_updated: dt.datetime | None) -> Alert:
    """An asset whose freshness policy moved to FAIL: one alert per state change event."""
    since = f"last updated {last_updated:%Y-%m-%d %H:%M} UTC" if last_updated else "never updated"
    window = f" (policy: at least every {_duration(fail_window)})" if fail_window else ""
    return Alert(
        alert_id=f"freshness:{asset_key}:{storage_id}", kind="freshness", severity="error", asset_key=asset_key,
        summary=f"{asset_key} is stale: {since}{window}",
        details={"previous_state": previous_state,
                 "fail_window_seconds": fail_window.total_seconds() if fail_window else None,
                 "last_updated": last_updated.isoformat() if last_updated else None,
                 "event_storage_id": storage_id},
    )


def data_loss_alert(storage_id: int, run_id: str | None, lost: Sequence[str], messages: int | None,
                    detail: str | None = None) -> Alert:
    """Kafka offsets the broker no longer held when they were read (``lost``: topic/partition/range
    each, recorded as ``lost_before_landing`` rejects), or offsets that went backwards (``detail``)."""
    if detail is not None:
        summary = f"Kafka offsets went backwards ({_one_line(detail)}): the broker lost data or the topic was recreated"
    else:
        summary = (f"{messages} Kafka message(s) were no longer held by the broker when they were read and could "
                   f"not be landed: {', '.join(lost)} (recorded as lost_before_landing rejects)")
    return Alert(
        alert_id=f"data_loss:{storage_id}", kind="data_loss", severity="error", asset_key="okr_raw", run_id=run_id,
        summary=summary, details={"lost_ranges": list(lost), "messages_lost": messages, "detail": detail,
                                  "event_storage_id": storage_id},
    )


def cascade_gap_alert(storage_id: int, asset_key: str, partitions: Sequence[str], upstream: str,
                      reason: str) -> Alert:
    """Partitions the refresh cascade could not request (outside the asset's partition set)."""
    shown = ", ".join(list(partitions)[:10]) + (f" and {len(partitions) - 10} more" if len(partitions) > 10 else "")
    return Alert(
        alert_id=f"cascade_gap:{asset_key}:{storage_id}", kind="cascade_gap", severity="error", asset_key=asset_key,
        summary=f"{len(partitions)} partition(s) of {asset_key} that new {upstream} data touched cannot be "
                f"refreshed: {shown} ({reason})",
        details={"partitions": list(partitions), "upstream": upstream, "reason": reason,
                 "event_storage_id": storage_id},
    )


def _duration(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"


# -- delivery formats -------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats &, < and > as control characters
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert, ui_url: str | None = None) -> dict[str, object]:
    """Slack-compatible incoming-webhook JSON: ``text`` (the fallback every receiver shows) and
    ``blocks`` (Slack's layout). Links to the Dagster UI when its URL is known."""
    title = f"{_ICONS[alert.severity]} {_TITLES[alert.kind]} ({alert.severity})"
    summary = _slack_escape(alert.summary)[:_SLACK_TEXT_LIMIT]
    context = [f"alert `{alert.alert_id}`"]
    base = ui_url.rstrip("/") if ui_url else None
    if alert.asset_key:
        context.append(f"<{base}/assets/{alert.asset_key}|{alert.asset_key}>" if base else f"asset `{alert.asset_key}`")
    if alert.run_id:
        context.append(f"<{base}/runs/{alert.run_id}|run {alert.run_id[:8]}>" if base else f"run `{alert.run_id}`")
    return {
        "text": f"{title}: {alert.summary}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{summary}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
        ],
    }


def alerts_frame(alerts: Sequence[Alert], raised_at: pd.Timestamp, webhook_status: str | None) -> pd.DataFrame:
    """Rows of ``okr_ops.okr_alerts`` (the ``Alerts`` model), one per alert."""
    frame = pd.DataFrame(
        [{"alert_id": a.alert_id, "kind": a.kind, "severity": a.severity, "asset_key": a.asset_key,
          "run_id": a.run_id, "summary": a.summary,
          "details": json.dumps(dict(a.details), default=str, sort_keys=True),
          "raised_at": raised_at, "webhook_status": webhook_status} for a in alerts],
        columns=list(Alerts.to_schema().columns))
    return Alerts.validate(frame)
