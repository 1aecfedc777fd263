"""Property-based fuzzing of the two inputs we do not control: CSV exports and Kafka payloads.

Whatever arrives — random bytes, wrong types, huge fields, odd encodings, NaN/Inf, extreme dates —
landing and validation never crash, every landed row is accepted, rejected with a known reason
or deduplicated (the counts add up), both outputs satisfy their Pandera models, and no text that
would reach the warehouse holds a character PostgreSQL cannot store.
"""

import csv
import datetime as dt
import io
import json
import uuid

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okr_assets.lib.contract import CHECKIN_COLUMNS, REJECT_REASON_CODES
from okr_assets.lib.csv_reader import UnreadableFileError, read_checkin_csv
from okr_assets.lib.landing import rows_from_file, rows_from_messages, sha256_of, unreadable_file_row
from okr_assets.lib.validation import partition_dates, validate_versions
from okr_assets_tests.conftest import checkin
from okr_assets_tests.lib.test_table_checks import assert_valid

FIRST = dt.date(2024, 1, 1)
INGESTED = pd.Timestamp("2025-07-20T12:00:00Z")
# Bounded so the suite stays fast; a failure prints the minimal example to turn into a unit test.
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

def _storable(text: str) -> bool:
    """What a UTF-8 text column can hold: no NUL and no lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


ODD_VALUES = ["\ud800", "\udfff\ud83d",  # lone surrogates: a JSON string can hold them, UTF-8 cannot
              "NaN", "nan", "inf", "-Infinity", "1e308", "1e-320", "-0", "1,5", "１２", "0x10", "  7 ", "∞",
              "9999-12-31", "0001-01-01", "2025-02-30", "2025-07-10T25:61:00Z", "1970-01-01T00:00:00Z",
              "2262-04-12T00:00:00Z", "1677-09-21T00:00:00Z", "On Track", "ON_TRACK", "done", "true", "null",
              "'; DROP TABLE okr_raw.okr_raw; --", "\u202e", "\ufeff", "a\tb", "line\nbreak", '"', "\\N", ""]

field_values = st.one_of(
    st.none(),
    st.sampled_from(ODD_VALUES),
    st.text(max_size=40),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)).map(str),
    st.text(min_size=2001, max_size=2100),  # huge: beyond the stored payload limit
)


@st.composite
def fuzzed_checkins(draw: st.DrawFn) -> list[dict]:
    """Mostly valid check-ins with random fields replaced by fuzz, some check-in ids repeated."""
    rows = []
    for i in range(draw(st.integers(min_value=1, max_value=8))):
        row = {k: (None if v is None else str(v)) for k, v in checkin(draw(st.integers(0, 5)), "2025-07-10").items()}
        for column in draw(st.lists(st.sampled_from(CHECKIN_COLUMNS), max_size=4, unique=True)):
            row[column] = draw(field_values)
        row["checkin_id"] = row["checkin_id"] if i % 3 else f"c{draw(st.integers(0, 3))}"
        rows.append(row)
    return rows


def _process(landed: pd.DataFrame) -> None:
    """What process_checkins does with a partition's rows, with the invariants it must keep."""
    landed = landed.reset_index(drop=True).assign(raw_id=range(1, len(landed) + 1))
    landed["partition_date"] = partition_dates(landed, FIRST)  # as landing routes them in the warehouse
    for column in landed.columns:  # what a warehouse text column can store
        if landed[column].dtype == object:
            assert landed[column].map(lambda v: not isinstance(v, str) or _storable(v)).all(), column
    result = validate_versions(landed, FIRST)
    assert len(result.accepted) + len(result.rejects) + len(result.superseded) == len(landed)
    assert sum(result.deduplicated_by_kind().values()) == len(result.superseded)
    assert set(result.rejects["reason"]) <= set(REJECT_REASON_CODES)
    assert result.rejects["message"].notna().all()
    # An accepted row's check-in date is the partition landing gave it (the publish replaces ranges).
    routed = landed.set_index("raw_id")["partition_date"]
    assert (result.accepted["checkin_date"].to_numpy() == routed.loc[result.accepted["raw_id"]].to_numpy()).all()
    assert_valid("okr_processed", result.accepted)
    assert_valid("okr_rejects", result.rejects)


def _land_file(data: bytes) -> pd.DataFrame:
    digest = sha256_of(data)
    try:
        parsed = read_checkin_csv(data)
    except UnreadableFileError as exc:
        return unreadable_file_row("fuzz.csv", digest, data, exc.code, str(exc), INGESTED, "run")
    return rows_from_file(parsed, "fuzz.csv", digest, INGESTED, "run")


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_as_a_csv_file(data: bytes) -> None:
    _process(_land_file(data))


@FUZZ
@given(fuzzed_checkins(), st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]),
       st.booleans())
def test_fuzzed_csv_rows_in_odd_encodings(rows: list[dict], encoding: str, extra_column: bool) -> None:
    buffer = io.StringIO()
    header = [*CHECKIN_COLUMNS, "extra_col"] if extra_column else list(CHECKIN_COLUMNS)
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(c) if row.get(c) is not None else "" for c in CHECKIN_COLUMNS]
                        + (["x"] if extra_column else []))
    data = buffer.getvalue().encode(encoding, errors="replace")
    landed = _land_file(data)
    if encoding in {"utf-8", "utf-8-sig"} and b"\x00" not in data:  # readable: a landed row per written row
        assert len(landed) == len(rows)
    else:  # or the whole file is one unreadable_file row (NUL bytes, another encoding) or parsed
        assert len(landed) in {1, len(rows)}
    _process(landed)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30) | st.sampled_from(ODD_VALUES),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["bytes", "json", "message"]))
    if kind == "bytes":
        return draw(st.none() | st.binary(max_size=500))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    body: dict = {"schema_version": draw(st.sampled_from(["1.0", "1.0", "2.0", 1.0])),
                  "event_id": draw(st.sampled_from([str(uuid.uuid4()), "not-a-uuid"])),
                  "produced_at": draw(st.sampled_from(["2025-07-10T10:00:01Z", "later"]))}
    body.update(checkin(draw(st.integers(0, 5)), "2025-07-10"))
    for column in draw(st.lists(st.sampled_from(CHECKIN_COLUMNS), max_size=4, unique=True)):
        body[column] = draw(json_values)
    text = json.dumps(body, ensure_ascii=draw(st.booleans()), allow_nan=True)
    # surrogatepass: a lone surrogate in a string becomes bytes that are not valid UTF-8, as a
    # careless producer would send them
    return text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else text.encode("utf-16", "surrogatepass")


@FUZZ
@given(st.lists(payloads(), min_size=1, max_size=10))
def test_fuzzed_kafka_payloads(values: list[bytes | None]) -> None:
    messages = [(i % 3, i, v) for i, v in enumerate(values)]
    landed = rows_from_messages(messages, "okr_raw_ingest", 0, INGESTED, "run", max_bytes=4096).to_pandas()
    assert len(landed) == len(values) and landed["source_key"].is_unique
    _process(landed)


@st.composite
def messages_as_sent(draw: st.DrawFn) -> bytes:
    """Good-looking messages with fuzzed scalars, written the ways producers write JSON."""
    body: dict = {"schema_version": "1.0", "event_id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
                  "produced_at": draw(st.sampled_from(["2025-07-10T10:00:01Z", "2025-07-10T10:00:01.123456+02:00"]))}
    body.update(checkin(draw(st.integers(0, 5)), "2025-07-10"))
    scalars = st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20)
    for column in draw(st.lists(st.sampled_from(CHECKIN_COLUMNS), max_size=5, unique=True)):
        body[column] = draw(scalars)
    text = json.dumps(body, ensure_ascii=draw(st.booleans()), allow_nan=True,
                      separators=draw(st.sampled_from([(", ", ": "), (",", ":")])))
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(st.lists(messages_as_sent() | payloads(), min_size=1, max_size=12))
def test_the_engine_parse_is_the_reference_parse(values: list[bytes | None]) -> None:
    from okr_assets.lib.messages import parse_messages
    from okr_assets.lib.messages_duckdb import parse_batch

    table, _ = parse_batch(values, 4096)
    engine = table.to_pandas().astype(object)
    assert engine.where(engine.notna(), None).to_dict("records") == parse_messages(values, 4096).to_dict("records")
