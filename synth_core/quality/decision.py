"""The gate's decision: a pure function of the measured figures and the domain's GateConfig.

MAUVE is judged against a bar that is the larger of an absolute floor and a fraction of the
real-vs-real reference score; a band just below the bar goes to a human (`review`). A batch that
copies train rows clearly more often than real held-out rows do, or that is mostly duplicates, fails
outright, whatever MAUVE says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from synth_core.config import GateConfig

PASS, REVIEW, FAIL = "pass", "review", "fail"
_SEVERITY = {PASS: 0, REVIEW: 1, FAIL: 2}


@dataclass(frozen=True)
class Criterion:
    metric: str
    value: float | None  # None when the metric could not be measured
    threshold: float
    comparison: str  # ">=" or "<=": how value must compare with threshold to pass
    outcome: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _at_most(metric: str, value: float, threshold: float, setting: str, outcome_if_over: str) -> Criterion:
    if value <= threshold:
        return Criterion(metric, value, threshold, "<=", PASS, f"{metric} {value:.3f} <= {threshold:.3f}")
    return Criterion(metric, value, threshold, "<=", outcome_if_over,
                     f"{metric} {value:.3f} exceeds gate.{setting}={threshold:.3f}")


def _at_least(metric: str, value: float, threshold: float, setting: str, outcome_if_under: str) -> Criterion:
    if value >= threshold:
        return Criterion(metric, value, threshold, ">=", PASS, f"{metric} {value:.3f} >= {threshold:.3f}")
    return Criterion(metric, value, threshold, ">=", outcome_if_under,
                     f"{metric} {value:.3f} is below gate.{setting}={threshold:.3f}")


def mauve_bar(reference: float, gate: GateConfig) -> float:
    """The score a synthetic batch needs to pass: floor, or a fraction of real-vs-real, whichever is higher."""
    return max(gate.mauve_floor, gate.mauve_fraction_of_reference * reference)


def _mauve_criterion(metrics: Mapping[str, float | None], gate: GateConfig) -> Criterion:
    score, reference = metrics.get("mauve"), metrics.get("mauve_reference")
    if score is None or reference is None:
        return Criterion("mauve", None, gate.mauve_floor, ">=", FAIL,
                         f"MAUVE not scored: {metrics.get('kept_rows', 0):.0f} rows kept, "
                         f"gate.min_rows={gate.min_rows}")
    bar = mauve_bar(reference, gate)
    basis = (f"max(gate.mauve_floor={gate.mauve_floor}, gate.mauve_fraction_of_reference="
             f"{gate.mauve_fraction_of_reference} x reference {reference:.3f})")
    if score >= bar:
        return Criterion("mauve", score, bar, ">=", PASS, f"MAUVE {score:.3f} >= bar {bar:.3f} = {basis}")
    if score >= bar - gate.review_band:
        return Criterion("mauve", score, bar, ">=", REVIEW,
                         f"MAUVE {score:.3f} is below bar {bar:.3f} = {basis} but within "
                         f"gate.review_band={gate.review_band}: needs a human review")
    return Criterion("mauve", score, bar, ">=", FAIL,
                     f"MAUVE {score:.3f} is below bar {bar:.3f} - gate.review_band={gate.review_band}; "
                     f"bar = {basis}")


def leakage_criterion(metrics: Mapping[str, float | None], gate: GateConfig) -> Criterion:
    """Near copies of train rows, judged against the rate of real held-out rows (see quality/leakage.py)."""
    excess, low, high = metrics["leakage_excess"], metrics["leakage_excess_low"], metrics["leakage_excess_high"]
    margin = gate.leakage_margin
    measured = (f"near copies of train rows: batch {metrics['synthetic_copy_rate']:.1%} vs real held-out rows "
                f"{metrics['reference_copy_rate']:.1%}, excess {excess:+.1%} "
                f"({gate.leakage_confidence:.0%} interval {low:+.1%} to {high:+.1%})")
    if low > margin:
        return Criterion("leakage_excess", excess, margin, "<=", FAIL,
                         f"{measured}: even the interval's lower bound exceeds gate.leakage_margin={margin}")
    if excess > margin:
        return Criterion("leakage_excess", excess, margin, "<=", REVIEW,
                         f"{measured}: above gate.leakage_margin={margin}, but within the interval: "
                         "needs a human review")
    return Criterion("leakage_excess", excess, margin, "<=", PASS,
                     f"{measured}: within gate.leakage_margin={margin}")


def _rate_criteria(metrics: Mapping[str, float | None], gate: GateConfig) -> list[Criterion]:
    return [
        leakage_criterion(metrics, gate),
        _at_most("duplicate_rate", metrics["duplicate_rate"], gate.max_duplicate_rate, "max_duplicate_rate", FAIL),
    ]


def criteria(metrics: Mapping[str, float | None], gate: GateConfig) -> list[Criterion]:
    """Every criterion the gate checks, each with its value, threshold and outcome.

    `metrics` needs the leakage calibration (synthetic_copy_rate, reference_copy_rate, leakage_excess
    and its interval leakage_excess_low/high), duplicate_rate and length_ks; mauve and mauve_reference
    may be None (or absent) when too few rows survived the filters to score them.
    """
    checks = _rate_criteria(metrics, gate)
    if metrics.get("length_ks") is not None:
        checks.append(_at_most("length_ks", metrics["length_ks"], gate.max_length_ks, "max_length_ks", REVIEW))
    for metric, threshold in (("precision", gate.min_precision), ("recall", gate.min_recall)):
        if threshold is not None and metrics.get(metric) is not None:
            checks.append(_at_least(metric, metrics[metric], threshold, f"min_{metric}", REVIEW))
    checks.append(_mauve_criterion(metrics, gate))
    return checks


def decide(metrics: Mapping[str, float | None], gate: GateConfig) -> tuple[str, list[Criterion]]:
    """The decision (`pass`, `review` or `fail`): the worst outcome over all criteria."""
    checks = criteria(metrics, gate)
    return max((c.outcome for c in checks), key=_SEVERITY.__getitem__), checks


def hard_failures(metrics: Mapping[str, float], gate: GateConfig) -> list[Criterion]:
    """Criteria that fail from the filter rates alone, before any scoring."""
    return [c for c in _rate_criteria(metrics, gate) if c.outcome == FAIL]
