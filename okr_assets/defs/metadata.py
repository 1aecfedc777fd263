"""Metadata helpers shared by assets and checks: schemas, counts and small Markdown tables."""


import warnings
from collections.abc import Mapping

import pandas as pd
import pandera.pandas as pa
from dagster import MetadataValue, TableColumn, TableSchema
from dagster_pandera import pandera_schema_to_dagster_type

from okr_assets import settings
from okr_assets.lib.schemas import sql_columns

# The engine the tables live in, shown as a kind (icon) on every table asset.
WAREHOUSE_KIND = settings.warehouse_kind()
_SCHEMAS: dict[type, TableSchema] = {}


def column_schema(model: type[pa.DataFrameModel]) -> TableSchema:
    """The Dagster column schema of a Pandera model (descriptions and constraints included), with
    each column's warehouse SQL type (DATE, TIMESTAMPTZ, ...): what a user querying the table sees,
    rather than the pandas dtype (``datetime64[ns]``, ``string[python]``)."""
    if model not in _SCHEMAS:
        with warnings.catch_warnings():  # the helper is marked beta; we only read its schema
            warnings.simplefilter("ignore")
            meta = pandera_schema_to_dagster_type(model).metadata["schema"]
        sql = dict(sql_columns(model))
        _SCHEMAS[model] = TableSchema(
            columns=[TableColumn(name=c.name, type=sql.get(c.name, c.type), description=c.description,
                                 constraints=c.constraints, tags=c.tags) for c in meta.schema.columns],
            constraints=meta.schema.constraints)
    return _SCHEMAS[model]


def markdown_table(frame: pd.DataFrame, limit: int = 20) -> MetadataValue:
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
    frame = pd.DataFrame(sorted(counts.items(), key=lambda kv: -kv[1]), columns=[key, value])
    return markdown_table(frame, limit=50)
