"""Freshness policies: how old the curated, feature and prediction tables may get.

Dagster's freshness daemon (part of ``dagster-daemon``, on by default) evaluates every asset's
``FreshnessPolicy`` about every 30 s and records each change of state (PASS, WARN, FAIL) as a
``FRESHNESS_STATE_CHANGE`` event; the UI shows the state, and ``okr_alert_sensor`` raises an alert
when one becomes FAIL. ``definitions.py`` says which asset gets which policy.
"""

import datetime as dt
from collections.abc import Callable, Mapping

from dagster import AssetKey, AssetSpec, FreshnessPolicy

# okr_refresh_schedule re-processes the last two days every 6 h, and okr_refresh_sensor carries
# that on to okr_curated and okr_features within minutes; okr_predictions follows okr_features
# through okr_automation_sensor (and the weekly retraining). So all three are refreshed every
# 6 h while check-ins arrive. Warn when one refresh was missed, fail when two were (an hour of
# slack for the cascade): one late tick is noise, two are an outage.
REFRESH_CADENCE = FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=13),
                                              warn_window=dt.timedelta(hours=7))


def with_freshness_policies(policies: Mapping[str, FreshnessPolicy]) -> Callable[[AssetSpec], AssetSpec]:
    """A spec mapper for ``Definitions.map_asset_specs`` giving the named assets their policy."""
    by_key = {AssetKey(name): policy for name, policy in policies.items()}

    def apply(spec: AssetSpec) -> AssetSpec:
        policy = by_key.get(spec.key)
        return spec.replace_attributes(freshness_policy=policy) if policy else spec

    return apply
