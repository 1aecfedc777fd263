"""The Kafka message contract: every malformed message becomes a row with a reason."""

import json

import pytest

from okr_assets.lib.messages import checkin_to_message, parse_message, parse_messages
from okr_assets_tests.conftest import checkin

EVENT = "3f1c2b9e-8a7d-4c6b-9e5f-0a1b2c3d4e5f"  # fixed: test ids must match across xdist workers


def test_round_trip_of_a_good_message() -> None:
    payload = checkin_to_message(checkin(1, "2025-07-10"), EVENT, "2025-07-10T10:00:01Z")
    row = parse_message(payload)
    assert row["landing_error"] is None
    assert row["checkin_id"] == "c1" and row["value"] == "11" and row["weight"] == "1"
    assert json.loads(row["extra"]) == {"schema_version": "1.0", "event_id": EVENT,
                                        "produced_at": "2025-07-10T10:00:01Z"}


def test_json_types_become_contract_text() -> None:
    body = {"schema_version": "1.0", "event_id": EVENT, "produced_at": "2025-07-10T10:00:01Z",
            "value": True, "start_value": 0.5, "comment": "", "confidence": None, "extra_field": [1]}
    row = parse_message(json.dumps(body).encode())
    assert (row["value"], row["start_value"], row["comment"], row["confidence"]) == ("1", "0.5", None, None)
    assert json.loads(row["extra"])["extra_field"] == [1]


@pytest.mark.parametrize(
    ("payload", "reason", "fragment"),
    [
        (b"x" * 70_000, "message_too_large", "70,000 bytes"),
        (b'{"a": "\xff"}', "message_not_utf8", "0xff"),
        (b"{not json", "message_not_json", "not JSON"),
        (None, "message_not_json", "tombstone"),
        (b"[1, 2]", "message_not_object", "list"),
        (b'{"schema_version": "2.0"}', "unknown_schema_version", "'2.0'"),
        (b'{"value": 1}', "unknown_schema_version", "None"),
        (b'{"schema_version": "1.0", "event_id": "nope"}', "invalid_envelope", "UUID"),
        (json.dumps({"schema_version": "1.0", "event_id": EVENT, "produced_at": "soon"}).encode(),
         "invalid_envelope", "produced_at"),
        (json.dumps({"schema_version": "1.0", "event_id": EVENT, "produced_at": "2025-07-10T10:00:01Z",
                     "comment": "a\u0000b"}).encode(), "unstorable_character", "comment"),
        (b'{"schema_version": "1.0", "event_id": "%s", "produced_at": "2025-07-10T10:00:01Z", "kr_title": "\\ud800"}'
         % EVENT.encode(), "unstorable_character", "kr_title"),
        # valid JSON that Python's json module refuses: it must not stop the messages after it
        (b'{"schema_version": "1.0", "value": ' + b"1" * 5000 + b"}", "message_not_json", "4300 digits"),
        (b"[" * 30_000 + b"]" * 30_000, "message_not_json", "recursion"),
    ],
)
def test_bad_messages(payload: bytes | None, reason: str, fragment: str) -> None:
    row = parse_message(payload)
    assert row["landing_error"] == reason
    assert fragment in row["landing_error_message"]
    assert len(row["raw_payload"]) <= 2000 and "\x00" not in row["raw_payload"]


def test_a_batch_parses_like_single_messages() -> None:
    good = checkin_to_message(checkin(1, "2025-07-10"), EVENT, "2025-07-10T10:00:01Z")
    odd = json.dumps({"schema_version": 1.0, "event_id": "{" + EVENT.upper() + "}", "produced_at": "2025-07-10",
                      "value": 1e300, "start_value": float("nan"), "weight": 10**20, "comment": "",
                      "confidence": False, "status": {"a": [1, "\u00e9"]}, "objective_title": "caf\u00e9",
                      "extra_field": "\ud800"}).encode()
    payloads = [good, None, b"{oops", odd, good.replace(b'"c1"', b'"a\\u0000b"'), good]
    batch = parse_messages(payloads)
    assert len(batch) == len(payloads)
    for i, payload in enumerate(payloads):
        assert batch.iloc[i].to_dict() == parse_message(payload), i
    assert batch["landing_error"].tolist() == [None, "message_not_json", "message_not_json", None,
                                               "unstorable_character", None]
    row = batch.iloc[3]
    assert (row["value"], row["start_value"], row["confidence"]) == ("1e+300", "NaN", "0")
    assert row["weight"] == "100000000000000000000"
    assert row["status"] == '{"a": [1, "é"]}' and row["objective_title"] == "café"
    assert json.loads(row["extra"])["extra_field"] == "\ud800" and "\\ud800" in row["extra"]
