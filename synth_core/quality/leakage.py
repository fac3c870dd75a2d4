"""Leakage judged against real data: how often the batch copies train rows, beside how often real rows do.

Short texts repeat each other by chance ("can you die from drinking too much water"), so a fixed
near-copy threshold rejects real data too: on BoolQ, 2.3% of real held-out rows are near copies of
real train rows by the gate's own rule. The gate therefore measures two rates with the same rule
against the same train rows (the rows the soft prompt learned from):

- the batch's rate: synthetic rows (that reached the leakage check) that copy a train row;
- the reference rate: real held-out rows that copy a train row.

Each rate has a Wilson score interval, their difference a Newcombe hybrid-score interval. The batch
fails when the interval's lower bound shows it copies more than `gate.leakage_margin` above real
data, goes to review when only the point estimate does, and passes otherwise. Every copy is still
removed from the batch before publishing (the filters do that, against train and held-out rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from synth_core.config import GateConfig
from synth_core.quality.filters import LeakageGuard


@dataclass(frozen=True)
class Proportion:
    """`count` of `rows`, with a Wilson score interval [low, high] at the report's confidence."""

    count: int
    rows: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.count / self.rows if self.rows else 0.0

    def to_dict(self) -> dict:
        return {"count": self.count, "rows": self.rows, "rate": self.rate, "low": self.low, "high": self.high}


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(count: int, rows: int, confidence: float) -> Proportion:
    """Wilson score interval of a binomial proportion (sound at 0 and at small counts, unlike Wald)."""
    if rows == 0:
        return Proportion(0, 0, 0.0, 1.0)
    z, p = _z(confidence), count / rows
    centre = (p + z * z / (2 * rows)) / (1 + z * z / rows)
    half = z / (1 + z * z / rows) * math.sqrt(p * (1 - p) / rows + z * z / (4 * rows * rows))
    return Proportion(count, rows, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class CalibratedLeakage:
    synthetic: Proportion  # synthetic rows that near-copy a train row
    reference: Proportion  # real held-out rows that near-copy a train row, by the same rule
    excess_low: float  # Newcombe interval of synthetic rate - reference rate
    excess_high: float
    margin: float
    confidence: float

    @property
    def excess(self) -> float:
        return self.synthetic.rate - self.reference.rate

    def to_dict(self) -> dict:
        return {"synthetic": self.synthetic.to_dict(), "reference": self.reference.to_dict(),
                "excess": self.excess, "excess_low": self.excess_low, "excess_high": self.excess_high,
                "margin": self.margin, "confidence": self.confidence}


def excess_interval(synthetic: Proportion, reference: Proportion) -> tuple[float, float]:
    """Newcombe's hybrid score interval for the difference of two independent proportions."""
    d = synthetic.rate - reference.rate
    low = d - math.hypot(synthetic.rate - synthetic.low, reference.high - reference.rate)
    high = d + math.hypot(synthetic.high - synthetic.rate, reference.rate - reference.low)
    return max(-1.0, low), min(1.0, high)


def calibrate(synthetic_copies: int, synthetic_rows: int, reference_copies: int, reference_rows: int,
              gate: GateConfig) -> CalibratedLeakage:
    synthetic = wilson(synthetic_copies, synthetic_rows, gate.leakage_confidence)
    reference = wilson(reference_copies, reference_rows, gate.leakage_confidence)
    low, high = excess_interval(synthetic, reference)
    return CalibratedLeakage(synthetic, reference, low, high, gate.leakage_margin, gate.leakage_confidence)


def calibrated_leakage(synthetic_texts: Sequence[str], synthetic_features: np.ndarray,
                       train_texts: Sequence[str], train_features: np.ndarray,
                       heldout_texts: Sequence[str], heldout_features: np.ndarray,
                       gate: GateConfig) -> CalibratedLeakage:
    """Near-copy rates of the batch and of real held-out rows against the train rows (unit-row features)."""
    guard = LeakageGuard(train_texts, train_features, gate)
    synthetic_copies = len(guard.find(synthetic_texts, synthetic_features))
    reference_copies = len(guard.find(heldout_texts, heldout_features))
    return calibrate(synthetic_copies, len(synthetic_texts), reference_copies, len(heldout_texts), gate)


def leakage_metrics(leakage: CalibratedLeakage) -> dict[str, float]:
    """The figures the gate's decision reads (quality/decision.py), as flat floats."""
    return {"synthetic_copy_rate": leakage.synthetic.rate, "reference_copy_rate": leakage.reference.rate,
            "leakage_excess": leakage.excess, "leakage_excess_low": leakage.excess_low,
            "leakage_excess_high": leakage.excess_high}
