"""Oversample and select: from the rows that passed the filters, keep `count` that lie on the targets'
support and are spread over it as the targets are.

A generator oversamples (`generation.oversample`), so dropping invalid rows still leaves enough; what is
kept should then look like the targets rather than like the generator's favourite modes:
1. Support: a row whose nearest train row is farther than the `quantile` of the train rows' own
   nearest-neighbour distances (each train row against the others) is off the targets' support and
   dropped. Calibrated on real-vs-real distances: about 1 - quantile of real rows would be dropped too.
2. Spread: the train rows are clustered (k-means) and, given the rows' lengths, binned by length
   (quintiles of the train rows' lengths); each cluster-and-length cell's quota is `count` times its share
   of train rows, filled by a seeded draw among the rows in it. Quota a cell cannot fill goes to a draw
   from the remaining rows of its length bin, then from all remaining rows.
   Length matters because rows that fail the checks are more often long ones (more steps to get wrong,
   loops that run on), so the rows that survive are shorter than the targets, which clusters of an
   embedding do not see.
Only train rows are read: the held-out rows are what the gate scores the selection against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth_core.quality.support import pairwise_distances

MAX_TRAIN_ROWS = 5000  # train rows used for the support and the clusters (a seeded draw beyond that)
ROWS_PER_CLUSTER = 20
LENGTH_BINS = 5


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


def length_bins(lengths: np.ndarray, train_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's and each train row's length bin, cut at the train rows' length quintiles."""
    edges = np.quantile(train_lengths, np.linspace(0, 1, LENGTH_BINS + 1)[1:-1])
    return np.searchsorted(edges, lengths, side="right"), np.searchsorted(edges, train_lengths, side="right")


def select_rows(features: np.ndarray, train_features: np.ndarray, count: int, quantile: float | None,
                seed: int, lengths: np.ndarray | None = None, train_lengths: np.ndarray | None = None) -> Selection:
    """Which candidate rows (`features`, one row each) to keep; features are unit-normalised embeddings.
    `quantile` None: no support cut. With `lengths` and `train_lengths` (characters), the kept rows' lengths
    spread like the train rows' too, as far as the candidates reach."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    features, train_features = features.astype(np.float64), train_features.astype(np.float64)
    if len(train_features) > MAX_TRAIN_ROWS:
        keep = np.sort(rng.choice(len(train_features), MAX_TRAIN_ROWS, replace=False))
        train_features = train_features[keep]
        train_lengths = None if train_lengths is None else np.asarray(train_lengths)[keep]
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
    bins, train_bins, nbins = np.zeros(len(features), int), np.zeros(len(train_features), int), 1
    if lengths is not None and train_lengths is not None:
        bins, train_bins = length_bins(np.asarray(lengths), np.asarray(train_lengths))
        nbins = LENGTH_BINS
    cells = kmeans.labels_ * nbins + train_bins
    quotas = _quotas(np.bincount(cells, minlength=clusters * nbins) / len(cells), count)
    cell_of = kmeans.predict(features[inside]) * nbins + bins[inside]
    chosen: list[int] = []

    def draw(members: np.ndarray, size: int) -> None:
        members = np.setdiff1d(members, chosen)
        chosen.extend(rng.choice(members, size=min(size, len(members)), replace=False).tolist())

    for cell, quota in enumerate(quotas):
        draw(inside[cell_of == cell], quota)
    for length_bin, quota in enumerate(quotas.reshape(clusters, nbins).sum(axis=0)):
        in_bin = inside[bins[inside] == length_bin]
        draw(in_bin, quota - np.isin(in_bin, chosen).sum())
    draw(inside, count - len(chosen))
    return Selection(sorted(chosen), off_support, threshold, clusters, count, len(features))
