"""A table's Pandera model checked where the table is: in the warehouse engine.

Every rule of the model becomes an Ibis predicate over the checked rows: a column's ``nullable``
and ``unique``, its Pandera built-in checks (``isin``, ``ge``, ...) and the model's ``@row_rule``
rules. ``violations`` counts the rows breaking each rule in one aggregate query and, only when
some rule is broken, fetches a bounded report: up to ``CASES_PER_RULE`` failing values per rule by
the table's key, and ``EXAMPLE_ROWS`` failing rows. Nothing else leaves the engine, so a check
costs one scan of the rows, whatever their number.

Why not ``pandera.ibis``'s own ``validate``: Pandera 0.35 runs one query per check and, for a
failing check, pulls that check's whole output into pandas (40 s and every row of the column for
a million rows), and it does not check a column's ``unique``. The predicates of the built-in
checks are one comparison each; ``_BUILTIN`` maps Pandera's check names to them, and a model
using a check it does not know fails loudly (a test runs every model through it).

Column types and the column set are not checked here: the table's DDL is generated from the same
model (``sql_columns``), so the engine already holds them to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis
    import pandas as pd
    import pandera.pandas as pa

ROW_RULE = "(row rule)"
CASES_PER_RULE = 20
EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class Predicate:
    """One rule of a model on the checked rows: ``column`` (or ``ROW_RULE``), Pandera's name for
    the check (``not_nullable``, ``field_uniqueness``, ``isin(...)``, a row rule's name) and the
    predicate, True where a row keeps it."""

    column: str
    check: str
    holds: ibis.BooleanValue


def _between(c: Any, min_value: Any, max_value: Any, include_min: bool = True, include_max: bool = True) -> Any:
    low = c >= min_value if include_min else c > min_value
    return low & (c <= max_value if include_max else c < max_value)


# Pandera's built-in checks (``Check.name``, keyword arguments ``Check.statistics``) as predicates.
_BUILTIN: dict[str, Callable[..., Any]] = {
    "isin": lambda c, allowed_values: c.isin(list(allowed_values)),
    "notin": lambda c, forbidden_values: c.notin(list(forbidden_values)),
    "equal_to": lambda c, value: c == value,
    "not_equal_to": lambda c, value: c != value,
    "greater_than": lambda c, min_value: c > min_value,
    "greater_than_or_equal_to": lambda c, min_value: c >= min_value,
    "less_than": lambda c, max_value: c < max_value,
    "less_than_or_equal_to": lambda c, max_value: c <= max_value,
    "in_range": _between,
    "str_matches": lambda c, pattern: c.re_search(f"^(?:{pattern})"),
}


def rules(model: type[pa.DataFrameModel], rows: ibis.Table) -> list[Predicate]:
    """Every rule of ``model`` on ``rows``, in the order Pandera would report them."""
    import ibis

    from okr_assets.lib.schemas import row_rules

    out: list[Predicate] = []
    for name, column in model.to_schema().columns.items():
        c = rows[name]
        if not column.nullable:
            out.append(Predicate(name, "not_nullable", c.notnull()))
        if column.unique:
            out.append(Predicate(name, "field_uniqueness",
                            c.isnull() | (c.isnull().count().over(ibis.window(group_by=c)) == 1)))
        for check in column.checks:
            if check.name not in _BUILTIN:
                raise NotImplementedError(f"{model.__name__}.{name}: Pandera check {check.name!r} has no engine "
                                          "predicate in okr_assets.lib.table_checks._BUILTIN")
            holds = _BUILTIN[check.name](c, **check.statistics)
            out.append(Predicate(name, str(check.error), c.isnull() | holds if check.ignore_na else holds))
    if model.to_schema().checks:
        raise NotImplementedError(f"{model.__name__} has pandas @dataframe_check rules: declare them with @row_rule "
                                  "to check the table in the engine")
    out += [Predicate(ROW_RULE, rule.name, rule.holds(rows)) for rule in row_rules(model)]
    return out


@dataclass(frozen=True)
class Violations:
    """What ``violations`` found: the rows checked and, when some rule is broken, its report."""

    rows_checked: int
    by_rule: pd.DataFrame | None = None  # column, check, failing_rows (most first)
    cases: pd.DataFrame | None = None  # column, check, key, failure_case
    examples: pd.DataFrame | None = None  # up to EXAMPLE_ROWS failing rows, as stored

    @property
    def passed(self) -> bool:
        return self.by_rule is None


CHECKED = "okr_checked_rows"  # the unbound table a check's expressions are built on


def violations(fetch: Callable[[ibis.Expr, Mapping[str, ibis.Table]], pd.DataFrame],
               model: type[pa.DataFrameModel], rows: ibis.Table, key: Sequence[str],
               extra: Callable[[ibis.Table], Sequence[Predicate]] = lambda _: ()) -> Violations:
    """Check ``rows`` against ``model`` (and the rules ``extra`` gives for the checked table) in the
    engine that ``fetch(expression, inputs)`` runs expressions on. Failures are named by ``key``:
    the columns a user finds a row by. The expressions are built on an unbound table ``CHECKED``
    that ``fetch`` binds to ``rows``, so their SQL (a tenth to half a second for Ibis to compile)
    is the same for every range or batch and is compiled once per process."""
    import ibis
    import pandas as pd

    inputs = {CHECKED: rows}
    unbound = ibis.table(rows.schema(), name=CHECKED)
    checked = [*rules(model, unbound), *extra(unbound)]
    ok = [f"_ok{i}" for i in range(len(checked))]
    marked = unbound.mutate(**{name: rule.holds.fill_null(False) for name, rule in zip(ok, checked, strict=True)})
    counts = fetch(marked.aggregate(n=marked.count(), **{
        f"_bad{i}": (~marked[name]).ifelse(1, 0).sum().coalesce(0) for i, name in enumerate(ok)}), inputs).iloc[0]
    counts = {k: int(v) for k, v in counts.items()}  # an engine's big-integer sums can arrive as text
    failing = [i for i in range(len(checked)) if counts[f"_bad{i}"]]
    if not failing:
        return Violations(rows_checked=counts["n"])

    by_rule = pd.DataFrame([{"column": checked[i].column, "check": checked[i].check,
                             "failing_rows": counts[f"_bad{i}"]} for i in failing])
    by_rule = by_rule.sort_values("failing_rows", ascending=False, kind="stable").reset_index(drop=True)
    label = "/".join(key)
    cases = []
    for i in failing:
        rule = checked[i]
        value = (ibis.literal("(whole row)") if rule.column == ROW_RULE
                 else marked[rule.column].cast("string").fill_null("None"))
        found = fetch(marked.filter(~marked[ok[i]]).select(*key, failure_case=value)
                      .order_by(list(key)).limit(CASES_PER_RULE), inputs)
        cases += [{"column": rule.column, "check": rule.check, label: _key(row, key),
                   "failure_case": row["failure_case"]} for _, row in found.iterrows()]
    broken = ibis.or_(*(~marked[ok[i]] for i in failing))
    examples = fetch(marked.filter(broken).select(*unbound.columns).order_by(list(key)).limit(EXAMPLE_ROWS),
                     inputs)
    return Violations(rows_checked=counts["n"], by_rule=by_rule, cases=pd.DataFrame(cases), examples=examples)


def _key(row: pd.Series, key: Sequence[str]) -> str:
    return "/".join(str(row[k]) for k in key)


def on_frame(table: str, frame: pd.DataFrame) -> Violations:
    """``violations`` of a DataFrame holding rows of ``table`` (dates as midnight datetime64, as
    pandas carries them), in an in-memory DuckDB (``okr_assets.lib.engine.in_memory``): how the
    model code and the tests check the frames they build, with the rules the warehouse checks the
    stored table with."""
    from okr_assets.lib.engine import in_memory
    from okr_assets.lib.schemas import CHECK_KEYS, TABLE_MODELS, sql_columns

    model = TABLE_MODELS[table]
    dates = tuple(c for c, sql in sql_columns(model) if sql == "DATE")
    with in_memory(dates, **{CHECKED: frame}) as mem:
        # The checked rows are in this database under the name the expressions use: no binding.
        return violations(lambda expr, inputs: mem.fetch(expr), model, mem.table(CHECKED), CHECK_KEYS[table])
