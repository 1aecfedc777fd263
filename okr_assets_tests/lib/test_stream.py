"""The live check-in stream continues the open cycle and mixes in realistic bad messages."""

import datetime as dt
import json

import pandas as pd

from okr_assets.lib.messages import parse_message
from okr_assets.lib.stream import CheckinStream
from okr_assets.lib.validation import validate_checkins


def _validate(payloads: list[bytes], now: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = pd.DataFrame([parse_message(p) for p in payloads]).assign(
        raw_id=range(1, len(payloads) + 1), source="kafka", source_ref="t/0/0",
        ingested_at=pd.Timestamp(now) + pd.Timedelta(seconds=1), partition_date=pd.Timestamp(now.date()))
    result = validate_checkins(rows, dt.date(2024, 1, 1))
    return result.accepted, result.rejects


def test_good_messages_continue_the_open_cycle() -> None:
    now = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
    stream = CheckinStream(seed=3, clock=lambda: now)
    messages = [stream.next_message() for _ in range(50)]
    assert not any(bad for _, _, bad in messages)
    accepted, rejects = _validate([v for _, v, _ in messages], now)
    assert rejects.empty and len(accepted) == 50
    assert set(accepted["cycle_id"]) == {"2026-Q4"}
    assert accepted["checkin_id"].is_unique
    assert {json.loads(v)["key_result_id"].encode() for _, v, _ in messages} == {k for k, _, _ in messages}


def test_bad_share_and_first_day_of_a_quarter() -> None:
    now = dt.datetime(2026, 10, 1, 0, 30, tzinfo=dt.UTC)  # the open cycle has no history yet
    stream = CheckinStream(seed=5, bad_share=0.5, clock=lambda: now)
    messages = [stream.next_message() for _ in range(200)]
    flagged = sum(bad for _, _, bad in messages)
    assert 60 < flagged < 140
    accepted, rejects = _validate([v for _, v, _ in messages], now)
    assert len(rejects) == flagged and len(accepted) == 200 - flagged
    assert len(set(rejects["reason"])) >= 5
