"""The CSV reader: RFC 4180 quoting, BOM, extra columns, malformed rows, unreadable files."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets.lib.csv_reader import UnreadableFileError, _read_well_formed, _read_with_csv_module, read_checkin_csv

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


# Fields built from the characters that decide how a CSV splits: quotes, commas, line ends.
_FIELD = st.lists(st.sampled_from(["a", " ", ",", '"', "\n", "\r\n", "é"]), max_size=4).map("".join)


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@st.composite
def _csv_texts(draw: st.DrawFn) -> str:
    """A check-in CSV with random fields: mostly well-formed (quoted by the RFC's rules), with
    some rows of the wrong width, stray quotes, lone carriage returns and blank lines."""
    header = [*CHECKIN_COLUMNS, *draw(st.lists(st.sampled_from(["extra_a", "extra_b", ""]), max_size=2,
                                               unique=True))]
    line_end = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(header)]
    kinds = ["row", "blank"] if draw(st.booleans()) else ["row", "row", "blank", "short", "raw", "lone_cr"]
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(kinds))
        if kind == "blank":
            lines.append("")
            continue
        width = len(header) if kind != "short" else draw(st.integers(1, len(header) + 2))
        fields = [draw(_FIELD) for _ in range(width)]
        if kind == "lone_cr":  # a line end for the csv module, text for a reader that splits on \n only
            fields[draw(st.integers(0, width - 1))] += "\r"
        if kind == "raw":  # written without quoting: stray quotes, unquoted line ends
            lines.append(",".join(fields))
        else:
            lines.append(",".join(_quoted(f) if draw(st.booleans()) or any(ch in f for ch in ',"\n\r') else f
                                  for f in fields))
    return line_end.join(lines) + draw(st.sampled_from(["", line_end]))


@settings(max_examples=300, deadline=None)
@given(_csv_texts())
def test_both_readers_give_the_same_rows(text: str) -> None:
    """Where Arrow reads a file (it is well-formed), its rows and lines are the csv module's."""
    fast = _read_well_formed(text.encode("utf-8"))
    if fast is None:
        return
    exact = _read_with_csv_module(text)
    assert {c: a.to_pylist() for c, a in fast.columns.items()} == {c: a.to_pylist() for c, a in exact.columns.items()}
    assert (fast.extra_columns, fast.malformed_rows) == (exact.extra_columns, exact.malformed_rows)


def test_generated_exports_are_read_by_arrow(tmp_path) -> None:
    """The generator's files (written like an OKR tool's exports) take the fast reader."""
    from okr_assets.lib.generator import GeneratorConfig, generate

    data = generate(GeneratorConfig(seed=3, teams=2, cycles=2))
    for name, frame in list(data.files.items())[:3]:
        frame.to_csv(tmp_path / name, index=False)
        raw = (tmp_path / name).read_bytes()
        fast = _read_well_formed(raw)
        assert fast is not None, name
        assert fast.row_count == len(frame)
        assert fast.columns["line"].to_pylist() == _read_with_csv_module(raw.decode()).columns["line"].to_pylist()
