"""Data-drift tests that do not cry wolf on large samples.

Per feature: a two-sample test (Kolmogorov-Smirnov for numeric, chi-square for categorical), its
p-value corrected for multiple testing (Bonferroni over every test in the report), and an effect
size. A feature drifts only when the change is statistically significant *and* larger than a
practical floor: normalised Wasserstein distance (W1 / reference standard deviation) for numeric
features, total variation distance (largest total share that moved) for categorical ones. With
100k rows a KS test rejects for a 0.05-sigma shift almost always; the effect floor does not.

The model's own output is tested the same way (black-box shift detection on the predicted risk,
which Rabanser, Guennemann & Lipton, "Failing Loudly", NeurIPS 2019, found to be the strongest
practical detector): a shift there is what can hurt the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05
NUMERIC_EFFECT_FLOOR = 0.1      # normalised Wasserstein distance
CATEGORICAL_EFFECT_FLOOR = 0.05  # total variation distance
PREDICTION_FEATURE = "predicted_risk"

REPORT_COLUMNS: tuple[str, ...] = (
    "feature", "kind", "test", "statistic", "p_value", "p_adjusted", "effect_metric", "effect_size",
    "psi", "significant", "practical", "drift", "reference_n", "current_n",
)


@dataclass(frozen=True)
class DriftVerdict:
    report: pd.DataFrame
    drift_detected: bool
    drifted_features: list[str]
    prediction_shift: bool | None

    @property
    def harmful(self) -> bool:
        """Input drift that also moved the model's predictions is likely to hurt it."""
        return bool(self.prediction_shift)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index on reference-quantile bins (numeric)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:
        return 0.0
    ref = np.histogram(np.clip(reference, edges[0], edges[-1]), edges)[0] / len(reference)
    cur = np.histogram(np.clip(current, edges[0], edges[-1]), edges)[0] / len(current)
    ref, cur = np.clip(ref, 1e-6, None), np.clip(cur, 1e-6, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _numeric(name: str, ref: np.ndarray, cur: np.ndarray) -> dict[str, object]:
    from scipy.stats import ks_2samp, wasserstein_distance

    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    stat, p = ks_2samp(ref, cur)
    scale = float(np.std(ref)) or 1.0
    return {"feature": name, "kind": "numeric", "test": "ks", "statistic": float(stat), "p_value": float(p),
            "effect_metric": "wasserstein/sd", "effect_size": float(wasserstein_distance(ref, cur) / scale),
            "psi": psi(ref, cur), "reference_n": len(ref), "current_n": len(cur)}


def _categorical(name: str, ref: pd.Series, cur: pd.Series) -> dict[str, object]:
    from scipy.stats import chi2_contingency

    ref, cur = ref.astype("string").fillna("<null>"), cur.astype("string").fillna("<null>")
    levels = sorted(set(ref) | set(cur))
    counts = np.array([[int((ref == lv).sum()) for lv in levels], [int((cur == lv).sum()) for lv in levels]])
    if len(levels) < 2:
        stat, p = 0.0, 1.0
    else:
        stat, p = chi2_contingency(counts + 0.5)[:2]  # +0.5: a level absent on one side
    shares = counts / counts.sum(axis=1, keepdims=True)
    tvd = float(0.5 * np.abs(shares[0] - shares[1]).sum())
    ref_s, cur_s = np.clip(shares[0], 1e-6, None), np.clip(shares[1], 1e-6, None)
    return {"feature": name, "kind": "categorical", "test": "chi2", "statistic": float(stat),
            "p_value": float(p), "effect_metric": "total_variation", "effect_size": tvd,
            "psi": float(np.sum((cur_s - ref_s) * np.log(cur_s / ref_s))),
            "reference_n": len(ref), "current_n": len(cur)}


def detect_drift(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
    alpha: float = ALPHA, numeric_floor: float = NUMERIC_EFFECT_FLOOR,
    categorical_floor: float = CATEGORICAL_EFFECT_FLOOR, units: dict[str, list[str]] | None = None,
) -> DriftVerdict:
    """Compare ``current`` with ``reference`` column by column (plus ``predicted_risk`` if both
    frames carry it). Bonferroni keeps the family-wise false-alarm rate at ``alpha``.

    ``units`` names, per feature, the columns of the unit it is measured on (e.g. a team-level
    aggregate repeated on every key result of the team): that feature is tested on one value per
    unit, since repeated values are not independent samples and would overstate significance.
    """
    units = units or {}

    def values(frame: pd.DataFrame, column: str) -> np.ndarray:
        keys = units.get(column)
        picked = frame.drop_duplicates(keys) if keys else frame
        return picked[column].to_numpy(float)

    rows = [_numeric(c, values(reference, c), values(current, c)) for c in numeric]
    rows += [_categorical(c, reference[c], current[c]) for c in categorical]
    has_pred = PREDICTION_FEATURE in reference and PREDICTION_FEATURE in current
    if has_pred:
        rows.append(_numeric(PREDICTION_FEATURE, reference[PREDICTION_FEATURE].to_numpy(float),
                             current[PREDICTION_FEATURE].to_numpy(float)))
    report = pd.DataFrame(rows)
    report["p_adjusted"] = np.minimum(report["p_value"] * len(report), 1.0)
    report["significant"] = report["p_adjusted"] < alpha
    floor = np.where(report["kind"] == "numeric", numeric_floor, categorical_floor)
    report["practical"] = report["effect_size"] >= floor
    report["drift"] = report["significant"] & report["practical"]
    report = report[list(REPORT_COLUMNS)]
    inputs = report[report["feature"] != PREDICTION_FEATURE]
    pred = report[report["feature"] == PREDICTION_FEATURE]
    return DriftVerdict(
        report=report,
        drift_detected=bool(report["drift"].any()),
        drifted_features=inputs.loc[inputs["drift"], "feature"].tolist(),
        prediction_shift=bool(pred["drift"].iloc[0]) if has_pred else None,
    )


def markdown_summary(verdict: DriftVerdict, reference_label: str, current_label: str) -> str:
    """A readable summary with a small text bar chart of effect sizes (rendered in the Dagster UI)."""
    r = verdict.report
    head = ("**Drift detected**" if verdict.drift_detected else "**No practically relevant drift**")
    if verdict.drift_detected:
        head += f" in {', '.join(verdict.drifted_features) or 'the model output only'}"
    harm = ("The champion's predicted risk shifted too: the drift is **likely to hurt the model**; "
            "retraining is requested." if verdict.harmful else
            "The champion's predicted risk did not shift materially: impact on the model is likely small."
            if verdict.prediction_shift is not None else "No champion predictions to compare.")
    lines = [f"{head}. {harm}", "",
             f"Reference: {reference_label}. Current: {current_label}. Bonferroni over {len(r)} tests "
             f"(alpha {ALPHA}); drift needs p_adj < {ALPHA} and effect >= {NUMERIC_EFFECT_FLOOR} "
             f"(numeric, W1/sd) or >= {CATEGORICAL_EFFECT_FLOOR} (categorical, TVD).", "",
             "| feature | test | p_adj | effect | effect vs. floor (│) | drift |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in r.sort_values("effect_size", ascending=False).itertuples():
        floor = NUMERIC_EFFECT_FLOOR if row.kind == "numeric" else CATEGORICAL_EFFECT_FLOOR
        lines.append(f"| {row.feature} | {row.test} | {row.p_adjusted:.3g} | {row.effect_size:.3f} | "
                     f"`{_effect_bar(row.effect_size, floor)}` | {_verdict(row.significant, row.practical)} |")
    return "\n".join(lines)


def _effect_bar(effect: float, floor: float, at_floor: int = 5, width: int = 20) -> str:
    """Effect size as a bar with the practical floor marked (│), so a long bar is visibly "large"
    and a bar short of the mark visibly too small to count, whatever its p-value."""
    n = round(at_floor * effect / floor)
    bar = ("█" * min(n, width)).ljust(at_floor, "·")
    return f"{bar[:at_floor]}│{bar[at_floor:]}" + ("+" if n > width else "")


def _verdict(significant: bool, practical: bool) -> str:
    """Why a feature does or does not count as drift: both conditions are needed."""
    if significant and practical:
        return "**yes**"
    missing = [why for ok, why in ((significant, f"p_adj ≥ {ALPHA}"), (practical, "effect below floor")) if not ok]
    return f"no ({', '.join(missing)})"


def html_report(verdict: DriftVerdict, markdown: str) -> str:
    table = verdict.report.to_html(index=False, float_format=lambda v: f"{v:.4g}")
    body = markdown.split("\n\n")[0]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>okr drift report</title></head>"
            f"<body><h1>OKR feature drift</h1><p>{body}</p>{table}</body></html>")
