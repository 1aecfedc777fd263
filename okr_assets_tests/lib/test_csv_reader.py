"""The CSV reader: RFC 4180 quoting, BOM, extra columns, malformed rows, unreadable files."""

import pytest

from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.lib.csv_reader import UnreadableFileError, read_checkin_csv

HEADER = ",".join(CHECKIN_COLUMNS)
ROW = ("o1,t1,2025-Q3,2025-07-01,2025-09-30,ob1,\"Grow, fast\",committed,kr1,Users,u1,numeric,"
       "increase,,0,100,1,c1,2025-07-08T10:00:00Z,20,,on_track,\"said \"\"hi\"\"\nnext line\"")


def test_quoting_bom_and_empty_fields() -> None:
    parsed = read_checkin_csv(("\ufeff" + HEADER + "\n" + ROW + "\n").encode("utf-8"))
    row = parsed.rows.iloc[0]
    assert row["org_id"] == "o1"  # BOM stripped from the first header field
    assert row["objective_title"] == "Grow, fast"
    assert row["comment"] == 'said "hi"\nnext line'
    assert row["unit"] is None and row["confidence"] is None
    assert row["line"] == 2
    assert parsed.malformed_rows == 0


def test_columns_in_any_order_and_extras_kept() -> None:
    cols = [*list(reversed(CHECKIN_COLUMNS)), "source_system"]
    values = {c: f"v_{c}" for c in CHECKIN_COLUMNS}
    line = ",".join(values[c] for c in reversed(CHECKIN_COLUMNS)) + ",okrtool"
    parsed = read_checkin_csv((",".join(cols) + "\r\n" + line + "\r\n").encode())
    assert parsed.rows.iloc[0]["team_id"] == "v_team_id"
    assert parsed.rows.iloc[0]["extra"] == '{"source_system": "okrtool"}'
    assert parsed.extra_columns == ("source_system",)


def test_malformed_row_is_kept_with_its_line() -> None:
    data = (HEADER + "\n" + ROW + "\n" + "bad,row\n\n" + ROW.replace("c1", "c2") + "\n").encode()
    parsed = read_checkin_csv(data)
    assert len(parsed.rows) == 3
    bad = parsed.rows.iloc[1]
    assert bad["landing_error"] == "malformed_row"
    assert bad["raw_payload"] == "bad,row"
    assert bad["line"] == 4  # the first row spans lines 2-3 (quoted newline)
    assert parsed.rows.iloc[2]["line"] == 6
    assert parsed.malformed_rows == 1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty file"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"name,age\nbob,3\n", "wrong header"),
        ((HEADER + "," + "team_id\n").encode(), "duplicated"),
        (b"PK\x03\x04\x00\x00binary zip", "NUL"),
    ],
)
def test_unreadable_files(data: bytes, fragment: str) -> None:
    with pytest.raises(UnreadableFileError, match=fragment):
        read_checkin_csv(data)


def test_header_only_file_has_no_rows() -> None:
    assert read_checkin_csv((HEADER + "\n").encode()).rows.empty
