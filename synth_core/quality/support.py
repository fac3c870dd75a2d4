"""Quality and diversity apart: k-nearest-neighbour precision and recall of a sample against real rows.

Kynkäänniemi et al. (2019), "Improved Precision and Recall Metric for Assessing Generative Models";
applied to LLM text by Le Bronnec et al. (ACL 2024). Each row of a set gets a ball reaching its k-th
nearest neighbour in the same set; the union of those balls estimates the set's support.

- precision: share of synthetic rows inside the real rows' support (are they realistic?);
- recall: share of real rows inside the synthetic rows' support (is the real variety covered?).

A batch that copies one mode of the targets has high precision and low recall; MAUVE mixes the two.
"""

from __future__ import annotations

import numpy as np

DEFAULT_K = 5


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of `a` and of `b`, shape (len(a), len(b))."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Each row's distance to its k-th nearest other row."""
    distances = pairwise_distances(features, features)
    np.fill_diagonal(distances, np.inf)
    return np.partition(distances, k - 1, axis=1)[:, k - 1]


def coverage(points: np.ndarray, support: np.ndarray, radii: np.ndarray) -> float:
    """Share of `points` inside at least one ball (a row of `support`, its radius)."""
    return float((pairwise_distances(points, support) <= radii[None, :]).any(axis=1).mean())


def precision_recall(synthetic: np.ndarray, real: np.ndarray, k: int = DEFAULT_K) -> tuple[float, float]:
    """(precision, recall) of `synthetic` against `real` features; each needs more than k rows."""
    if k < 1 or min(len(synthetic), len(real)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} rows per side "
                         f"(got {len(synthetic)} synthetic, {len(real)} real)")
    synthetic, real = synthetic.astype(np.float64), real.astype(np.float64)
    return coverage(synthetic, real, knn_radii(real, k)), coverage(real, synthetic, knn_radii(synthetic, k))
