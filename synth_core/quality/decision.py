"""The gate's decision: a pure function of the measured figures and the domain's GateConfig.

MAUVE is judged against a bar that is the larger of an absolute floor and a fraction of the
real-vs-real reference score, through the interval of its margin over that bar: clear of the bar
passes, more than a band below it fails, anything else goes to a human (`review`). A batch that
copies train rows clearly more often than real held-out rows do, or that is mostly duplicates, fails
outright, whatever MAUVE says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from synth_core.config import GateConfig
from synth_core.quality.mauve_score import CalibratedMauve, centred_interval

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


def mauve_metrics(mauve: CalibratedMauve, gate: GateConfig) -> dict[str, float]:
    """MAUVE, the reference and the margin over the bar, each with its interval over rows.

    The margin (MAUVE minus the bar the reference sets) is computed on each paired resample, so its
    interval carries the uncertainty of both scores at once.
    """
    resamples = mauve.bootstrap
    bar = mauve_bar(mauve.reference.mean, gate)
    point = mauve.synthetic.mean - bar
    margins = [s - mauve_bar(r, gate) for s, r in zip(resamples.synthetic, resamples.reference, strict=True)]
    (low, high), (ref_low, ref_high) = resamples.interval("synthetic"), resamples.interval("reference")
    margin_low, margin_high = centred_interval(point, np.array(margins), resamples.confidence)
    margin_low, margin_high = max(margin_low, -bar), min(margin_high, 1.0 - bar)  # MAUVE lies in [0, 1]
    return {"mauve": mauve.synthetic.mean, "mauve_low": low, "mauve_high": high,
            "mauve_reference": mauve.reference.mean, "mauve_reference_low": ref_low,
            "mauve_reference_high": ref_high, "mauve_margin": point, "mauve_margin_low": margin_low,
            "mauve_margin_high": margin_high, "mauve_confidence": resamples.confidence}


def _interval(metrics: Mapping[str, float | None], name: str) -> str:
    low, high = metrics.get(f"{name}_low"), metrics.get(f"{name}_high")
    return "" if low is None else f" ({metrics['mauve_confidence']:.0%} interval {low:.3f} to {high:.3f})"


def _mauve_criterion(metrics: Mapping[str, float | None], gate: GateConfig,
                     unscored: str | None = None) -> Criterion:
    """Pass when the margin's interval lies above the bar, fail when it lies below bar - review_band,
    review in between: a small or noisy batch lands in review instead of a coin-flip pass or fail.
    Without an interval (a bare score) the interval is the point itself."""
    score, reference = metrics.get("mauve"), metrics.get("mauve_reference")
    if score is None or reference is None:
        return Criterion("mauve", None, gate.mauve_floor, ">=", FAIL, unscored or
                         f"MAUVE not scored: {metrics.get('kept_rows', 0):.0f} rows kept, "
                         f"gate.min_rows={gate.min_rows}")
    bar = mauve_bar(reference, gate)
    margin = score - bar
    low, high = metrics.get("mauve_margin_low", margin), metrics.get("mauve_margin_high", margin)
    measured = (f"MAUVE {score:.3f}{_interval(metrics, 'mauve')} against bar {bar:.3f} = "
                f"max(gate.mauve_floor={gate.mauve_floor}, gate.mauve_fraction_of_reference="
                f"{gate.mauve_fraction_of_reference} x reference {reference:.3f}{_interval(metrics, 'mauve_reference')})")
    spread = f"margin {margin:+.3f}" + (f", interval {low:+.3f} to {high:+.3f}" if low != high else "")
    if low >= 0:
        return Criterion("mauve", score, bar, ">=", PASS, f"{measured}: {spread}, clear of the bar")
    if high < -gate.review_band:
        return Criterion("mauve", score, bar, ">=", FAIL,
                         f"{measured}: {spread}, below the bar by more than gate.review_band={gate.review_band}")
    return Criterion("mauve", score, bar, ">=", REVIEW,
                     f"{measured}: {spread}, not clear of the bar and within gate.review_band="
                     f"{gate.review_band} of it: needs a human review")


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


def _valid_rate_criterion(rate: float, gate: GateConfig, check_rates: Mapping[str, float]) -> Criterion:
    criterion = _at_least("valid_rate", rate, gate.min_valid_rate, "min_valid_rate", FAIL)
    if criterion.outcome == PASS:
        return criterion
    worst = ", ".join(f"{name} {r:.0%}" for name, r in sorted(check_rates.items(), key=lambda kv: kv[1]))
    return Criterion(**{**criterion.to_dict(), "reason": f"{criterion.reason}; rows passing each check: {worst}"})


def criteria(metrics: Mapping[str, float | None], gate: GateConfig, unscored: str | None = None,
             check_rates: Mapping[str, float] | None = None) -> list[Criterion]:
    """Every criterion the gate checks, each with its value, threshold and outcome.

    `metrics` needs the leakage calibration (synthetic_copy_rate, reference_copy_rate, leakage_excess
    and its interval leakage_excess_low/high), duplicate_rate and length_ks; mauve and mauve_reference
    may be None (or absent) when MAUVE could not be scored, `unscored` then saying why; with
    mauve_metrics() the MAUVE criterion reads the intervals.
    """
    checks = _rate_criteria(metrics, gate)
    if metrics.get("valid_rate") is not None and gate.min_valid_rate is not None:
        checks.append(_valid_rate_criterion(metrics["valid_rate"], gate, check_rates or {}))
    if metrics.get("length_ks") is not None:
        checks.append(_at_most("length_ks", metrics["length_ks"], gate.max_length_ks, "max_length_ks", REVIEW))
    for metric, threshold in (("precision", gate.min_precision), ("recall", gate.min_recall)):
        if threshold is not None and metrics.get(metric) is not None:
            checks.append(_at_least(metric, metrics[metric], threshold, f"min_{metric}", REVIEW))
    checks.append(_mauve_criterion(metrics, gate, unscored))
    return checks


def decide(metrics: Mapping[str, float | None], gate: GateConfig, unscored: str | None = None,
           check_rates: Mapping[str, float] | None = None) -> tuple[str, list[Criterion]]:
    """The decision (`pass`, `review` or `fail`): the worst outcome over all criteria."""
    checks = criteria(metrics, gate, unscored, check_rates)
    return max((c.outcome for c in checks), key=_SEVERITY.__getitem__), checks

