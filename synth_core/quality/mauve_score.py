"""MAUVE of synthetic vs held-out real text, calibrated against real train vs the same held-out rows.

mauve-text quantises the pooled features with PCA + k-means, so the score depends on the sample
size, the number of buckets and the k-means seed, and it is only meaningful relative to a reference
computed the same way. Both scores here use the same held-out sample, the same sample size, the
same buckets and scaling factor, and the same list of k-means seeds; each is reported as the mean
and spread over those seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

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


def mauve_over_seeds(p_features: np.ndarray, q_features: np.ndarray, settings: MauveSettings) -> MauveScore:
    """MAUVE(p, q) once per k-means seed, on precomputed features of equal sample size."""
    import mauve

    if len(p_features) != len(q_features):
        raise ValueError(f"MAUVE compares equal sample sizes, got {len(p_features)} and {len(q_features)}")
    scores = []
    for seed in settings.seeds:
        result = mauve.compute_mauve(
            p_features=p_features, q_features=q_features, num_buckets=settings.num_buckets,
            mauve_scaling_factor=settings.scaling_factor, seed=seed,
            kmeans_explained_var=settings.kmeans_explained_variance, kmeans_num_redo=settings.kmeans_num_redo,
            kmeans_max_iter=settings.kmeans_max_iter, verbose=False)
        scores.append(float(result.mauve))
    return MauveScore(tuple(scores))


@dataclass(frozen=True)
class CalibratedMauve:
    synthetic: MauveScore  # synthetic vs real held-out
    reference: MauveScore  # real train vs real held-out: what "as good as real" scores here
    settings: MauveSettings

    def to_dict(self) -> dict:
        return {"synthetic": self.synthetic.to_dict(), "reference": self.reference.to_dict(),
                "settings": self.settings.to_dict()}


def calibrated_mauve(synthetic: np.ndarray, train: np.ndarray, heldout: np.ndarray, *,
                     num_buckets: int | str = "auto", scaling_factor: float = 5.0,
                     seeds: tuple[int, ...] = (0, 1, 2)) -> CalibratedMauve:
    """Score synthetic and real-train features against the same held-out features, same settings.

    All three arrays must already be sampled to the same number of rows.
    """
    if not len(synthetic) == len(train) == len(heldout):
        raise ValueError(f"sample sizes differ: synthetic {len(synthetic)}, train {len(train)}, "
                         f"held-out {len(heldout)}")
    settings = MauveSettings(resolve_num_buckets(num_buckets, len(heldout)), float(scaling_factor),
                             tuple(seeds), len(heldout))
    return CalibratedMauve(mauve_over_seeds(synthetic, heldout, settings),
                           mauve_over_seeds(train, heldout, settings), settings)
