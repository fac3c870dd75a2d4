"""Oversample and select: from the rows that passed the filters, keep `count` that lie on the targets'
support and are spread over it as the targets are.

A generator oversamples (`generation.oversample`), so dropping invalid rows still leaves enough; what is
kept should then look like the targets rather than like the generator's favourite modes:
1. Support: a row whose nearest train row is farther than the `quantile` of the train rows' own
   nearest-neighbour distances (each train row against the others) is off the targets' support and
   dropped. Calibrated on real-vs-real distances: about 1 - quantile of real rows would be dropped too.
2. Spread: the train rows are clustered (k-means); each cluster's quota is `count` times its share of
   train rows, filled by a seeded draw among the rows nearest to it; quota a cluster cannot fill goes to
   a seeded draw from the remaining rows.
Only train rows are read: the held-out rows are what the gate scores the selection against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth_core.quality.support import pairwise_distances

MAX_TRAIN_ROWS = 5000  # train rows used for the support and the clusters (a seeded draw beyond that)
ROWS_PER_CLUSTER = 20


@dataclass(frozen=True)
class Selection:
    selected: list[int]  # positions among the candidate rows, ascending
    off_support: dict[int, float]  # position -> distance to its nearest train row
    threshold: float  # inf: no support cut
    clusters: int
    requested: int
    candidates: int

    def summary(self) -> dict:
        return {"requested": self.requested, "candidates": self.candidates, "off_support": len(self.off_support),
                "selected": len(self.selected),
                "not_selected": self.candidates - len(self.off_support) - len(self.selected),
                "support_threshold": round(self.threshold, 4) if np.isfinite(self.threshold) else None,
                "clusters": self.clusters}


def _quotas(shares: np.ndarray, count: int) -> np.ndarray:
    """Integer quotas summing to `count`, proportional to `shares` (largest remainders)."""
    exact = shares * count
    quotas = np.floor(exact).astype(int)
    quotas[np.argsort(-(exact - quotas), kind="stable")[: count - quotas.sum()]] += 1
    return quotas


def select_rows(features: np.ndarray, train_features: np.ndarray, count: int, quantile: float | None,
                seed: int) -> Selection:
    """Which candidate rows (`features`, one row each) to keep; features are unit-normalised embeddings.
    `quantile` None: no support cut."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    features, train_features = features.astype(np.float64), train_features.astype(np.float64)
    if len(train_features) > MAX_TRAIN_ROWS:
        train_features = train_features[np.sort(rng.choice(len(train_features), MAX_TRAIN_ROWS, replace=False))]
    threshold = np.inf
    if quantile is not None:
        own = pairwise_distances(train_features, train_features)
        np.fill_diagonal(own, np.inf)
        threshold = float(np.quantile(own.min(axis=1), quantile))
    nearest = pairwise_distances(features, train_features).min(axis=1) if len(features) else np.zeros(0)
    off_support = {i: float(d) for i, d in enumerate(nearest) if d > threshold}
    inside = np.array([i for i in range(len(features)) if i not in off_support], dtype=int)
    if len(inside) <= count:
        return Selection(inside.tolist(), off_support, threshold, 0, count, len(features))

    clusters = int(min(max(2, count // ROWS_PER_CLUSTER), len(train_features) // 2))
    kmeans = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(train_features)
    shares = np.bincount(kmeans.labels_, minlength=clusters) / len(train_features)
    labels = kmeans.predict(features[inside])
    chosen: list[int] = []
    for cluster, quota in enumerate(_quotas(shares, count)):
        members = inside[labels == cluster]
        chosen += rng.choice(members, size=min(quota, len(members)), replace=False).tolist()
    rest = np.setdiff1d(inside, chosen)
    chosen += rng.choice(rest, size=count - len(chosen), replace=False).tolist()
    return Selection(sorted(chosen), off_support, threshold, clusters, count, len(features))
