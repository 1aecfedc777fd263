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


def _message(**fields: object) -> dict:
    body: dict = {"schema_version": "1.0", "event_id": EVENT, "produced_at": "2025-07-10T10:00:01Z"}
    body.update(checkin(1, "2025-07-10"))
    body.update(fields)
    return body


# Payloads DuckDB reads differently from Python's json, or writes differently from the reference:
# each must still give the reference's row (by the reference's own parse, where DuckDB cannot prove it).
_GOOD = json.dumps(_message()).encode()
ENGINE_CASES: list[bytes | None] = [
    _GOOD, _GOOD.replace(b", ", b","), _GOOD.replace(b": ", b" :  "), json.dumps(_message(), indent=2).encode(),
    _GOOD[:-1] + b",}", _GOOD[:-1] + b', "value": 2}', _GOOD[:-1] + b', "extra_field": 1}',
    *(json.dumps(_message(value=v), allow_nan=True).encode() for v in (
        float("nan"), float("inf"), -float("inf"), 1e-05, 0.0001, 0.00012, 1e15, 9999999999999998.0, 1e16, 1e300,
        123456789012345.6, 0.1 + 0.2, -0.0, 0.0, 3.5, 10**17, 10**18, 10**19, 10**20, -(10**18), True, False,
        [1], {"a": 1}, "", " ", "1e5", "x\"y", "a\\b", "line\nbreak", "café", "\u00e9\u4e2d\U0001f600", "\x7f",
        "\u2028", "\u0000", "\ud800", "\x01")),
    _GOOD.replace(b'"value": 11', b'"value": 3.50'), _GOOD.replace(b'"value": 11', b'"value": 1E+2'),
    _GOOD.replace(b'"value": 11', b'"value": -0'), _GOOD.replace(b'"value": 11', b'"value": 0.000010'),
    _GOOD.replace(b'"value": 11', b'"value": inf'), _GOOD.replace(b'"value": 11', b'"value": 007'),
    _GOOD.replace(b'"value": 11', b'"value": 1' + b"0" * 30),
    _GOOD.replace(b'"c1"', b'"c\\u0031"'), _GOOD.replace(b'"c1"', b'"c\\/1"'),
    *(json.dumps(_message(produced_at=t)).encode() for t in (
        "2025-07-10T10:00:01", "2025-07-10T10:00:01.5Z", "2025-07-10T10:00:01.123Z", "2025-07-10T10:00:01.123456Z",
        "2025-07-10T10:00:01+02:00", "2025-07-10 10:00:01Z", "2025-02-30T10:00:01Z", "2025-07-10T24:00:00Z",
        "0000-07-10T10:00:01Z", "2025-07-10T10:00:60Z", "2025-07-10", 20250710)),
    json.dumps(_message(event_id=EVENT.upper())).encode(), json.dumps(_message(event_id="{" + EVENT + "}")).encode(),
    json.dumps(_message(event_id=EVENT.replace("-", ""))).encode(), json.dumps(_message(schema_version=1.0)).encode(),
    json.dumps({k: v for k, v in _message().items() if k != "comment"}).encode(),
    json.dumps({"org_id": "o", "\x01event_id\x01": 1, **_message()}).encode(),
    b"\xef\xbb\xbf" + _GOOD, b" " + _GOOD, _GOOD.replace(b'"c1"', b'"\xffc1"'), b"x" * 70_000, None, b"", b"{}",
    b"[1, 2]", b"{oops",
]


def test_the_engine_parse_gives_the_reference_rows() -> None:
    from okr_assets.lib.messages_duckdb import parse_batch

    table, by_reference = parse_batch(ENGINE_CASES, 64 * 1024)
    reference = parse_messages(ENGINE_CASES)
    engine = table.to_pandas()
    assert list(engine.columns) == list(reference.columns) and len(engine) == len(ENGINE_CASES)
    for i in range(len(ENGINE_CASES)):
        got = {k: (None if v is None or v != v else v) for k, v in engine.iloc[i].to_dict().items()}
        assert got == reference.iloc[i].to_dict(), (i, ENGINE_CASES[i])
    assert 0 < by_reference < len(ENGINE_CASES)
    empty, none = parse_batch([], 64 * 1024)  # an offset range that held no record
    assert (empty.num_rows, none, empty.column_names) == (0, 0, list(reference.columns))


def test_the_engine_parses_the_usual_messages_itself() -> None:
    """The reference is a fallback, not the path: a stream of ordinary messages never reaches it."""
    from okr_assets.lib.messages_duckdb import parse_batch
    from okr_assets.lib.stream import CheckinStream

    stream = CheckinStream(seed=5, teams=2)
    payloads = [stream.next_message()[1] for _ in range(300)]
    payloads += [json.dumps(_message(value=v, comment=c)).encode() for v, c in ((0.25, "on it"), (7, "café"))]
    table, by_reference = parse_batch(payloads, 64 * 1024)
    assert by_reference == 0
    assert table.column("landing_error").null_count == len(payloads)
    assert table.to_pandas().equals(parse_messages(payloads))
