"""A live stream of check-in messages that continues the generator's timeline.

The key results of the current (open) cycle pick up where the generated CSV history leaves
them: each message is a new check-in of one of them, made now, with progress moving on by a
random-walk step. A share of messages is realistically broken (not JSON, not UTF-8, wrong schema
version, contract violations) so the reject path is exercised end to end.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.lib.generator import GeneratorConfig, generate
from okr_assets.lib.messages import checkin_to_message
from okr_assets.lib.validation import validate_checkins

_NAMESPACE = uuid.UUID("6f0c1c8e-2d4b-4c55-9a53-0e1f5d8b7a21")
BAD_KINDS: tuple[str, ...] = (
    "not_json", "not_utf8", "not_object", "schema_version", "weight", "missing_team", "status",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CheckinStream:
    """Deterministic for a seed (which key result, which step, which message is bad); the
    timestamps are the real time of production."""

    def __init__(self, seed: int = 42, teams: int = 6, bad_share: float = 0.0,
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self.seed, self.bad_share, self.clock = seed, bad_share, clock
        self.rng = np.random.default_rng([seed, 7_777])
        self.counter = 0
        now = clock()
        # On the first days of a quarter the current cycle has no check-ins yet: take its key
        # results' definitions from a history generated a little further (only their state is
        # used; every message is stamped with the real time).
        quarter_start = dt.datetime(now.year, 3 * ((now.month - 1) // 3) + 1, 1, tzinfo=dt.UTC)
        history_as_of = max(now, quarter_start + dt.timedelta(days=14))
        history = pd.concat(generate(GeneratorConfig(seed=seed, teams=teams, cycles=1,
                                                     as_of=history_as_of)).files.values(), ignore_index=True)
        raw = history.reindex(columns=list(CHECKIN_COLUMNS)).assign(
            raw_id=range(1, len(history) + 1), source="file", source_ref="history",
            ingested_at=pd.Timestamp(history_as_of), partition_date=pd.Timestamp(now.date()))
        accepted = validate_checkins(raw, dt.date(1970, 1, 1)).accepted
        open_cycle = accepted[accepted["cycle_end"] >= pd.Timestamp(now.date())]
        latest = open_cycle.sort_values(["checkin_at", "raw_id"]).groupby("key_result_id").tail(1)
        if latest.empty:
            raise ValueError("the generated history has no key result in an open cycle to continue")
        self.krs: list[dict[str, Any]] = latest.to_dict("records")

    def _next_row(self, now: dt.datetime) -> dict[str, Any]:
        kr = self.krs[int(self.rng.integers(len(self.krs)))]
        kr["progress"] = float(np.clip(kr["progress"] + self.rng.normal(0.04, 0.06), -1.0, 2.0))
        start, target = kr["start_value"], kr["target_value"]
        value = round(start + kr["progress"] * (target - start), 2)
        if kr["metric_kind"] == "boolean":
            value = 1.0 if kr["progress"] >= 0.7 else 0.0
        elapsed = (now.date() - kr["cycle_start"].date()).days / max(
            (kr["cycle_end"] - kr["cycle_start"]).days, 1)
        gap = kr["progress"] - 0.9 * elapsed
        status = "achieved" if kr["progress"] >= 1 else "on_track" if gap > -0.1 else (
            "at_risk" if gap > -0.3 else "off_track")
        confidence = int(np.clip(round(5 + 10 * gap + self.rng.normal(0, 1)), 0, 10))
        row = {c: kr.get(c) for c in CHECKIN_COLUMNS}
        row.update(
            cycle_start=kr["cycle_start"].date().isoformat(), cycle_end=kr["cycle_end"].date().isoformat(),
            checkin_id=f"ci-s{self.seed}-live-{self.counter:07d}",
            checkin_at=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            value=value, confidence=confidence, status=status, comment=None,
        )
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}

    def next_message(self) -> tuple[bytes, bytes, bool]:
        """(key, value, is_bad) of the next message."""
        self.counter += 1
        now = self.clock()
        row = self._next_row(now)
        event_id = str(uuid.uuid5(_NAMESPACE, f"{self.seed}:{self.counter}"))
        produced_at = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        key = str(row["key_result_id"]).encode()
        if self.rng.random() >= self.bad_share:
            return key, checkin_to_message(row, event_id, produced_at), False
        kind = BAD_KINDS[self.counter % len(BAD_KINDS)]
        if kind == "not_json":
            return key, b"checkin_id=" + row["checkin_id"].encode() + b"; value=oops", True
        if kind == "not_utf8":
            return key, checkin_to_message(row, event_id, produced_at).replace(b'"', b"\xff", 1), True
        if kind == "not_object":
            return key, json.dumps([row["checkin_id"], row["value"]]).encode(), True
        if kind == "schema_version":
            body = json.loads(checkin_to_message(row, event_id, produced_at))
            body["schema_version"] = "0.9"
            return key, json.dumps(body).encode(), True
        broken = {"weight": {"weight": 1.5}, "missing_team": {"team_id": None},
                  "status": {"status": "vibing"}}[kind]
        return key, checkin_to_message({**row, **broken}, event_id, produced_at), True
