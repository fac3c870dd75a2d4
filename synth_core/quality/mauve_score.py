"""MAUVE of synthetic vs held-out real text, calibrated against real train vs the same held-out rows.

mauve-text quantises the pooled features with PCA + k-means, so the score depends on the sample
size, the number of buckets and the k-means seed, and it is only meaningful relative to a reference
computed the same way. Both scores here use the same held-out sample, the same sample size, the
same buckets and scaling factor, and the same list of k-means seeds; each is reported as the mean
and spread over those seeds.

The spread over k-means seeds understates the spread over samples (a few hundred rows per side), so
both scores also get an interval over rows (see MauveBootstrap): each resample draws half of the
synthetic, train and held-out rows (one held-out subset shared by both scores, so they stay paired)
and uses the next k-means seed in turn. The decision (decision.py) reads the paired resamples.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from synth_core.progress import Progress

if TYPE_CHECKING:
    from synth_core.config import GateConfig

log = logging.getLogger(__name__)

# Fixed mauve-text settings, recorded in every report; the configurable ones live in GateConfig.
KMEANS_EXPLAINED_VARIANCE = 0.9
KMEANS_NUM_REDO = 5
KMEANS_MAX_ITER = 500


@dataclass(frozen=True)
class MauveSettings:
    num_buckets: int
    scaling_factor: float
    seeds: tuple[int, ...]
    sample_size: int
    kmeans_explained_variance: float = KMEANS_EXPLAINED_VARIANCE
    kmeans_num_redo: int = KMEANS_NUM_REDO
    kmeans_max_iter: int = KMEANS_MAX_ITER

    def to_dict(self) -> dict:
        return {**asdict(self), "seeds": list(self.seeds)}


@dataclass(frozen=True)
class MauveScore:
    per_seed: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_seed))

    @property
    def spread(self) -> float:
        """Standard deviation over k-means seeds (0 for a single seed)."""
        return float(np.std(self.per_seed))

    def to_dict(self) -> dict:
        return {"mean": self.mean, "spread": self.spread, "per_seed": list(self.per_seed)}


def resolve_num_buckets(num_buckets: int | str, sample_size: int) -> int:
    """mauve-text's 'auto' rule (one bucket per ten rows, at least two), made explicit for the report."""
    if num_buckets == "auto":
        return max(2, round(sample_size / 10))
    return int(num_buckets)


def gate_mauve_settings(gate: GateConfig, size: int, max_buckets: int | None = None) -> MauveSettings:
    """A domain's gate MAUVE settings for `size` rows a side, so every score set beside the gate's (decoding
    choice, the quality bench's second feature space) is computed as the gate computes it."""
    buckets = resolve_num_buckets(gate.mauve_num_buckets, size)
    return MauveSettings(min(buckets, max_buckets) if max_buckets else buckets, gate.mauve_scaling_factor,
                         tuple(gate.mauve_seeds), size)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence what C code writes to file descriptor 2 (Python's own `sys.stderr` writes are flushed first).

    faiss's k-means, which MAUVE quantises with, prints "WARNING clustering N points to K centroids: please
    provide at least ..." for every clustering with fewer than 39 points per centroid. MAUVE's buckets (a
    tenth of the rows) always are, by design, so each gate printed over a hundred such lines into task logs.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def mauve_over_seeds(p_features: np.ndarray, q_features: np.ndarray, settings: MauveSettings) -> MauveScore:
    """MAUVE(p, q) once per k-means seed, on precomputed features of equal sample size."""
    import mauve

    if len(p_features) != len(q_features):
        raise ValueError(f"MAUVE compares equal sample sizes, got {len(p_features)} and {len(q_features)}")
    scores = []
    for seed in settings.seeds:
        with native_stderr_silenced():
            result = mauve.compute_mauve(
                p_features=p_features, q_features=q_features, num_buckets=settings.num_buckets,
                mauve_scaling_factor=settings.scaling_factor, seed=seed,
                kmeans_explained_var=settings.kmeans_explained_variance, kmeans_num_redo=settings.kmeans_num_redo,
                kmeans_max_iter=settings.kmeans_max_iter, verbose=False)
        scores.append(float(result.mauve))
    return MauveScore(tuple(scores))


# Subsampling (Politis & Romano): deviations of an m-row statistic from its median, scaled by
# sqrt(m / n), stand for the n-row statistic's. On BoolQ real rows at n = 200 the sd of MAUVE over 20
# batches with both sides redrawn was 0.016, the half-samples' 0.025 unscaled and 0.017 scaled
# (`python -m synth_core.bench.interval_calibration domains/boolq.yaml`, docs/BENCHMARKS.md).
HALF_SAMPLE_SCALE = math.sqrt(0.5)


def centred_interval(point: float, resampled: np.ndarray, confidence: float,
                     scale: float = HALF_SAMPLE_SCALE) -> tuple[float, float]:
    """`point` widened by the central `confidence` share of the half-samples' deviations from their
    median, scaled by `scale`.

    Centred on the full-sample estimate because MAUVE on half as many rows is biased (downwards
    here); only the spread of the half-samples is used.
    """
    tail = (1.0 - confidence) / 2
    low, median, high = np.quantile(np.asarray(resampled, dtype=np.float64), [tail, 0.5, 1.0 - tail])
    return float(point + scale * (low - median)), float(point + scale * (high - median))


@dataclass(frozen=True)
class MauveBootstrap:
    """Paired half-samples over rows: synthetic[i] and reference[i] were scored on the same held-out subset.

    Rows are drawn *without* replacement: a bootstrap with replacement puts tied rows on one side
    only, which MAUVE reads as a divergence (on GSM8K, 200 real test rows scored 0.93 on the full
    sample but 0.83 on average over such resamples, and the percentile interval missed 0.93).
    Half-sampling without replacement has no ties; its deviations are scaled by HALF_SAMPLE_SCALE
    (measured: unscaled, they were ~1.5x the spread of MAUVE over redrawn real batches).
    """

    synthetic: tuple[float, ...]
    reference: tuple[float, ...]
    synthetic_point: float
    reference_point: float
    confidence: float
    seed: int

    def interval(self, which: str) -> tuple[float, float]:
        """The score's interval, clipped to MAUVE's range [0, 1]."""
        low, high = centred_interval(getattr(self, f"{which}_point"), np.array(getattr(self, which)),
                                     self.confidence)
        return max(0.0, low), min(1.0, high)

    def to_dict(self) -> dict:
        return {"resamples": len(self.synthetic), "confidence": self.confidence, "seed": self.seed,
                "method": "half-samples without replacement; deviations scaled by sqrt(1/2), centred on the "
                          "full-sample score",
                "synthetic_interval": list(self.interval("synthetic")),
                "reference_interval": list(self.interval("reference")),
                "synthetic": list(self.synthetic), "reference": list(self.reference)}


def bootstrap_mauve(synthetic: np.ndarray, train: np.ndarray, heldout: np.ndarray, settings: MauveSettings, *,
                    points: tuple[float, float], resamples: int, confidence: float, seed: int) -> MauveBootstrap:
    """`resamples` paired (synthetic, reference) MAUVE scores on half-samples of every side."""
    n = len(heldout)
    half = replace(settings, num_buckets=max(2, round(settings.num_buckets / 2)), sample_size=n // 2)
    synthetic_scores, reference_scores = [], []
    progress = Progress(log, "MAUVE interval", resamples, "resamples")
    for i in range(resamples):
        rng = np.random.default_rng([seed, i])
        s, t, h = (rng.choice(n, size=n // 2, replace=False) for _ in range(3))
        one_seed = replace(half, seeds=(settings.seeds[i % len(settings.seeds)],))
        synthetic_scores.append(mauve_over_seeds(synthetic[s], heldout[h], one_seed).mean)
        reference_scores.append(mauve_over_seeds(train[t], heldout[h], one_seed).mean)
        progress.update(i + 1, log=(i + 1) % 10 == 0)
    progress.close()
    return MauveBootstrap(tuple(synthetic_scores), tuple(reference_scores), *points, confidence, seed)


@dataclass(frozen=True)
class CalibratedMauve:
    synthetic: MauveScore  # synthetic vs real held-out
    reference: MauveScore  # real train vs real held-out: what "as good as real" scores here
    settings: MauveSettings
    bootstrap: MauveBootstrap

    def to_dict(self) -> dict:
        return {"synthetic": self.synthetic.to_dict(), "reference": self.reference.to_dict(),
                "settings": self.settings.to_dict(), "bootstrap": self.bootstrap.to_dict()}


def calibrated_mauve(synthetic: np.ndarray, train: np.ndarray, heldout: np.ndarray, *,
                     num_buckets: int | str = "auto", scaling_factor: float = 5.0,
                     seeds: tuple[int, ...] = (0, 1, 2), resamples: int = 50, confidence: float = 0.9,
                     bootstrap_seed: int = 0) -> CalibratedMauve:
    """Score synthetic and real-train features against the same held-out features, same settings,
    on the full samples (mean over k-means seeds) and on `resamples` paired half-samples.

    All three arrays must already be sampled to the same number of rows.
    """
    if not len(synthetic) == len(train) == len(heldout):
        raise ValueError(f"sample sizes differ: synthetic {len(synthetic)}, train {len(train)}, "
                         f"held-out {len(heldout)}")
    settings = MauveSettings(resolve_num_buckets(num_buckets, len(heldout)), float(scaling_factor),
                             tuple(seeds), len(heldout))
    scores = mauve_over_seeds(synthetic, heldout, settings), mauve_over_seeds(train, heldout, settings)
    return CalibratedMauve(*scores, settings, bootstrap_mauve(
        synthetic, train, heldout, settings, points=(scores[0].mean, scores[1].mean), resamples=resamples,
        confidence=confidence, seed=bootstrap_seed))
