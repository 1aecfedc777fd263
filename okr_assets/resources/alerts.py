"""Alert delivery: always the ``okr_alerts`` table and the log, and a webhook when one is configured.

Raising an alert inserts it first (the table's unique key on ``alert_id``) and posts it only when
the insert was new, so a sensor tick evaluated twice posts nothing twice: delivery is at most
once, and a row whose status stays ``pending`` shows a post that never completed. A webhook that
is down, slow or answers an error never fails the caller: the failure is logged and recorded as
``failed: <reason>``. pandas (for the table rows) is imported when alerts are raised, not when
the code location loads.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from okr_assets.resources.warehouse import TABLES, WarehouseResource

if TYPE_CHECKING:
    from okr_assets.lib.alerts import Alert

DELIVERED = "delivered"
PENDING = "pending"


class AlertsResource(ConfigurableResource):
    """Where alerts go. ``webhook_url`` unset: the ``okr_alerts`` table and the log only."""

    webhook_url: str | None = Field(
        default=None, description="Slack-compatible incoming webhook (JSON POST). Set via OKR_ALERT_WEBHOOK_URL; "
                                  "never shown in the UI.")
    timeout_seconds: float = Field(
        default=5.0, description="Per-request webhook timeout: a slow receiver must not hold a sensor tick.")
    ui_url: str | None = Field(default=None, description="Base URL of the Dagster UI, for links in messages.")

    def raise_alerts(self, alerts: Sequence[Alert], warehouse: WarehouseResource,
                     log: logging.Logger) -> list[Alert]:
        """Record, log and post each alert not raised before; returns those that were new."""
        if not alerts:
            return []
        import pandas as pd

        from okr_assets.lib.alerts import alerts_frame, slack_payload

        warehouse.setup()  # okr_alerts may not exist yet on a fresh warehouse
        status = PENDING if self.webhook_url else None
        raised: list[Alert] = []
        for alert in alerts:
            now = pd.Timestamp.now(tz="UTC")
            if not warehouse.append_new("okr_alerts", alerts_frame([alert], now, status)):
                log.info(f"alert {alert.alert_id} was raised before; not repeated")
                continue
            level = logging.ERROR if alert.severity == "error" else logging.WARNING
            log.log(level, f"ALERT [{alert.kind}] {alert.summary} (alert_id {alert.alert_id})")
            if self.webhook_url:
                delivery = self.post(slack_payload(alert, self.ui_url))
                if delivery != DELIVERED:
                    log.warning(f"alert {alert.alert_id} not delivered to the webhook: {delivery}")
                warehouse.execute(f"UPDATE {TABLES['okr_alerts'].qualified} SET webhook_status = ? "
                                  "WHERE alert_id = ?", [delivery, alert.alert_id])
            raised.append(alert)
        return raised

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
