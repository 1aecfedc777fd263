"""Alert delivery: always the log, the ``okr_alerts`` table, and a webhook when one is configured.

Raising an alert inserts it first (the table's unique key on ``alert_id``) and posts it only when
the insert was new, so a sensor tick evaluated twice posts nothing twice: delivery is at most
once, and a row whose status stays ``pending`` shows a post that never completed. Alerts do not
depend on the warehouse: when it cannot be written (the outage one most needs to hear about),
the alert is logged and posted anyway and handed back to the sensor, which keeps it in its cursor
and has it recorded once the warehouse is back (while it is down, a tick evaluated twice could
post an alert twice). A webhook that is down, slow or answers an error never fails the caller:
the failure is logged and recorded as ``failed: <reason>``. pandas (for the table rows) is
imported when alerts are raised, not when the code location loads.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from okr_assets.resources.warehouse import TABLES, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

    from okr_assets.lib.alerts import Alert

DELIVERED = "delivered"
PENDING = "pending"
# A sensor tick must end within Dagster's tick timeout: recording an alert waits this long at most
# for the embedded file (held by a run) or the server, and the alert goes out anyway.
_RECORD_WAIT_SECONDS = 5.0
_MAX_UNRECORDED = 200  # alerts kept in a sensor cursor to record later (a long outage)


@dataclass(frozen=True)
class Delivery:
    """What ``raise_alerts`` did: the new alerts (logged, and posted when a webhook is set), and
    those that could not be recorded yet (JSON, for the caller to keep and hand back)."""

    raised: list[Alert]
    unrecorded: list[dict]


def _now() -> pd.Timestamp:
    import pandas as pd

    return pd.Timestamp.now(tz="UTC")


def _timestamp(text: str) -> pd.Timestamp:
    import pandas as pd

    return pd.Timestamp(text)


def _row(alert: Alert, raised_at: pd.Timestamp, status: str | None) -> pd.DataFrame:
    from okr_assets.lib.alerts import alerts_frame

    return alerts_frame([alert], raised_at, status)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


class AlertsResource(ConfigurableResource):
    """Where alerts go. ``webhook_url`` unset: the ``okr_alerts`` table and the log only."""

    webhook_url: str | None = Field(
        default=None, description="Slack-compatible incoming webhook (JSON POST). Set via OKR_ALERT_WEBHOOK_URL; "
                                  "never shown in the UI.")
    timeout_seconds: float = Field(
        default=5.0, description="Per-request webhook timeout: a slow receiver must not hold a sensor tick.")
    ui_url: str | None = Field(default=None, description="Base URL of the Dagster UI, for links in messages.")

    def raise_alerts(self, alerts: Sequence[Alert], warehouse: WarehouseResource, log: logging.Logger,
                     unrecorded: Sequence[Mapping[str, object]] = ()) -> Delivery:
        """Record, log and post each alert not raised before. ``unrecorded``: alerts logged and
        posted on an earlier tick while the warehouse could not record them; they are recorded
        first, and an alert among them is not posted again. When the warehouse cannot be written
        (down, or its embedded file held by a run), alerts are still logged and posted, and come
        back in ``Delivery.unrecorded`` for the caller to keep until it can."""
        pending = [dict(p) for p in unrecorded]
        quick = WarehouseResource(url=warehouse.url, lock_timeout_seconds=_RECORD_WAIT_SECONDS)
        recordable = self._record(pending, quick, log)
        waiting = {str(p["alert"]["alert_id"]) for p in pending}
        raised: list[Alert] = []
        for alert in alerts:
            if alert.alert_id in waiting:
                continue  # posted on an earlier tick, not recorded yet
            raised_at = _now()
            if recordable:
                try:
                    new = quick.append_new("okr_alerts", _row(alert, raised_at, PENDING if self.webhook_url else None))
                except Exception as exc:  # down, locked: the alert still goes out below
                    recordable = False
                    log.warning(f"alerts cannot be recorded in okr_ops.okr_alerts right now ({_one_line(exc)}); "
                                "they are logged and posted, and recorded once the warehouse is back")
                else:
                    if not new:
                        log.info(f"alert {alert.alert_id} was raised before; not repeated")
                        continue
                    status = self._deliver(alert, log)
                    if status is not None:
                        try:
                            quick.execute(f"UPDATE {TABLES['okr_alerts'].qualified} SET webhook_status = ? "
                                          "WHERE alert_id = ?", [status, alert.alert_id])
                        except Exception as exc:
                            log.warning(f"alert {alert.alert_id}: webhook status {status!r} not recorded: "
                                        f"{_one_line(exc)}")
                    raised.append(alert)
                    continue
            pending.append({"alert": alert.to_json(), "raised_at": raised_at.isoformat(),
                            "webhook_status": self._deliver(alert, log)})
            waiting.add(alert.alert_id)
            raised.append(alert)
        if len(pending) > _MAX_UNRECORDED:
            log.error(f"{len(pending) - _MAX_UNRECORDED} alert(s) posted while the warehouse was down are dropped "
                      f"from the to-record list (kept: the latest {_MAX_UNRECORDED}); they are in the logs")
        return Delivery(raised, pending[-_MAX_UNRECORDED:])

    def _record(self, pending: list[dict], warehouse: WarehouseResource, log: logging.Logger) -> bool:
        """Record alerts posted while the warehouse was down (emptying ``pending``); False when it
        still cannot be written."""
        try:
            warehouse.setup()  # okr_alerts may not exist yet on a fresh warehouse
            from okr_assets.lib.alerts import Alert

            while pending:
                item = pending[0]
                alert = Alert.from_json(item["alert"])
                raised_at = _timestamp(str(item["raised_at"]))
                warehouse.append_new("okr_alerts", _row(alert, raised_at, item.get("webhook_status")))
                pending.pop(0)
                log.info(f"alert {alert.alert_id} (raised {raised_at:%Y-%m-%d %H:%M:%S} UTC while the warehouse "
                         "was down) is recorded now")
        except Exception as exc:
            log.warning(f"alerts cannot be recorded in okr_ops.okr_alerts right now ({_one_line(exc)}); "
                        f"{len(pending)} earlier alert(s) wait to be recorded")
            return False
        return True

    def _deliver(self, alert: Alert, log: logging.Logger) -> str | None:
        """Log the alert and post it to the webhook; the webhook status (None without one)."""
        from okr_assets.lib.alerts import slack_payload

        level = logging.ERROR if alert.severity == "error" else logging.WARNING
        log.log(level, f"ALERT [{alert.kind}] {alert.summary} (alert_id {alert.alert_id})")
        if not self.webhook_url:
            return None
        delivery = self.post(slack_payload(alert, self.ui_url))
        if delivery != DELIVERED:
            log.warning(f"alert {alert.alert_id} not delivered to the webhook: {delivery}")
        return delivery

    def post(self, payload: dict[str, object]) -> str:
        """POST ``payload`` as JSON; ``delivered`` or ``failed: <reason>``, never an exception."""
        url = self.webhook_url or ""
        if not url.lower().startswith(("http://", "https://")):
            return "failed: webhook URL must start with http:// or https://"
        request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read(1024)
            return DELIVERED
        except urllib.error.HTTPError as exc:
            return f"failed: HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            return f"failed: {exc.reason}"
        except (TimeoutError, OSError, ValueError) as exc:  # timeouts while reading, bad URLs
            return f"failed: {type(exc).__name__}: {exc}"
