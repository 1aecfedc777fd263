"""Metadata helpers shared by assets and checks: schemas, counts and small Markdown tables.

Column schemas come from ``column_schemas.py``, plain data generated from the Pandera models
(``python -m okr_assets.defs.metadata --write``), so loading the code location imports neither
pandas, Pandera nor dagster-pandera. pandas is imported by the helpers that format frames, which
only run inside asset and check bodies.
"""

import argparse
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableConstraints, TableSchema

from okr_assets import settings

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

# The engine the tables live in, shown as a kind (icon) on every table asset.
WAREHOUSE_KIND = settings.warehouse_kind()


def column_schema(table: str) -> TableSchema:
    """The Dagster column schema of a warehouse table (descriptions and constraints included),
    with each column's warehouse SQL type (DATE, TIMESTAMPTZ, ...): what a user querying the table
    sees, rather than the pandas dtype (``datetime64[ns]``, ``string[python]``)."""
    # imported here, so the generator below still runs when that file is broken (a merge conflict)
    from okr_assets.defs.column_schemas import COLUMN_SCHEMAS

    data = COLUMN_SCHEMAS[table]
    return TableSchema(
        columns=[TableColumn(name=c["name"], type=c["type"], description=c["description"],
                             constraints=TableColumnConstraints(nullable=c["nullable"], unique=c["unique"],
                                                                other=c["other"]),
                             tags=c["tags"]) for c in data["columns"]],
        constraints=TableConstraints(other=data["constraints"]))


def markdown_table(frame: "pd.DataFrame", limit: int = 20) -> MetadataValue:
    shown = frame.head(limit)
    if shown.empty:
        return MetadataValue.md("_none_")
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    body = [
        "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ")[:80] for v in row) + " |"
        for row in shown.itertuples(index=False)
    ]
    more = [f"\n_{len(frame) - limit} more rows not shown_"] if len(frame) > limit else []
    return MetadataValue.md("\n".join([header, rule, *body, *more]))


def counts_table(counts: Mapping[str, int], key: str = "reason", value: str = "rows") -> MetadataValue:
    import pandas as pd

    frame = pd.DataFrame(sorted(counts.items(), key=lambda kv: -kv[1]), columns=[key, value])
    return markdown_table(frame, limit=50)


# -- generating column_schemas.py from the Pandera models ------------------------------------------

GENERATED = Path(__file__).with_name("column_schemas.py")
_HEADER = '''"""Dagster column schemas of the warehouse tables: GENERATED from their Pandera models.

Do not edit by hand. After changing a model in ``okr_assets/lib/schemas.py``, regenerate with

    python -m okr_assets.defs.metadata --write

The models stay the single source of truth: a test (okr_assets_tests/test_definitions.py) fails
while this file differs from what they produce. Plain data, so that loading the code location
imports neither pandas, Pandera nor dagster-pandera. One line per column.
"""
# ruff: noqa: E501

'''


def pandera_column_schema(model: "type[pa.DataFrameModel]") -> TableSchema:
    """A model's column schema as dagster-pandera derives it, with the warehouse SQL types: what
    ``column_schemas.py`` holds. Imports pandas and Pandera; used to generate and test that file."""
    from dagster_pandera import pandera_schema_to_dagster_type

    from okr_assets.lib.schemas import row_rules, sql_columns

    with warnings.catch_warnings():  # the helper is marked beta; we only read its schema
        warnings.simplefilter("ignore")
        meta = pandera_schema_to_dagster_type(model).metadata["schema"]
    sql = dict(sql_columns(model))
    # The row rules of the tables checked in the engine are table constraints like Pandera's own.
    rules = [rule.description for rule in row_rules(model)]
    return TableSchema(
        columns=[TableColumn(name=c.name, type=sql.get(c.name, c.type), description=c.description,
                             constraints=c.constraints, tags=c.tags) for c in meta.schema.columns],
        constraints=TableConstraints(other=[*meta.schema.constraints.other, *rules]))


def render_column_schemas() -> str:
    """The text of ``column_schemas.py`` for the current Pandera models (every warehouse table)."""
    from okr_assets.lib.schemas import TABLE_MODELS

    lines = [_HEADER + "COLUMN_SCHEMAS: dict[str, dict] = {"]
    for table, model in TABLE_MODELS.items():
        schema = pandera_column_schema(model)
        lines.append(f"    {table!r}: {{")
        lines.append(f"        'model': {model.__name__!r},")
        lines.append("        'columns': [")
        for c in schema.columns:
            column: dict[str, Any] = {
                "name": c.name, "type": c.type, "description": c.description,
                "nullable": c.constraints.nullable, "unique": c.constraints.unique,
                "other": list(c.constraints.other), "tags": dict(c.tags)}
            lines.append(f"            {column!r},")
        lines.append("        ],")
        lines.append(f"        'constraints': {list(schema.constraints.other)!r},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m okr_assets.defs.metadata",
                                     description="Generate okr_assets/defs/column_schemas.py from the Pandera models.")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write the file (default: print it)")
    action.add_argument("--check", action="store_true", help="exit 1 when the file is out of date")
    args = parser.parse_args(argv)
    text = render_column_schemas()
    if args.write:
        GENERATED.write_text(text, encoding="utf-8")
        print(f"wrote {GENERATED}")
    elif args.check:
        current = GENERATED.read_text(encoding="utf-8") == text
        print(f"{GENERATED} is {'up to date' if current else 'OUT OF DATE: run with --write'}")
        return 0 if current else 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
