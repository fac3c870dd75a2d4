"""Diversity and shape of a text sample: distinct-n, mean pairwise similarity, length distribution.

MAUVE can miss a generator that covers the right topics with too little variety or the wrong
lengths, and it mixes quality with diversity; these figures show each, including k-NN precision
(realism) and recall (coverage) against the held-out rows. Each is computed for the synthetic sample and, as a reference, for
an equal-size sample of real train rows, both against the same real held-out rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from synth_core.quality.lexical import distinct_n, tokenize
from synth_core.quality.similarity import mean_pairwise_similarity
from synth_core.quality.support import precision_recall

HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class ShapeMetrics:
    distinct_1: float
    distinct_2: float
    mean_pairwise_similarity: float
    mean_length: float
    length_ks: float  # two-sample Kolmogorov-Smirnov statistic of character lengths vs held-out rows
    precision: float  # share of these rows inside the held-out rows' k-NN support (quality/support.py)
    recall: float  # share of held-out rows inside these rows' k-NN support

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def length_ks(lengths: Sequence[int], reference_lengths: Sequence[int]) -> float:
    """Largest gap between the two empirical length CDFs (0 = same distribution, 1 = disjoint)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(lengths, reference_lengths).statistic)


def shape_metrics(texts: Sequence[str], features: np.ndarray, heldout_texts: Sequence[str],
                  heldout_features: np.ndarray, k: int) -> ShapeMetrics:
    """Shape of `texts` (with unit-normalised `features`) against `heldout_texts` (and theirs)."""
    token_lists = [tokenize(t) for t in texts]
    lengths = [len(t) for t in texts]
    precision, recall = precision_recall(features, heldout_features, min(k, len(texts) - 1, len(heldout_texts) - 1))
    return ShapeMetrics(
        distinct_1=distinct_n(token_lists, 1),
        distinct_2=distinct_n(token_lists, 2),
        mean_pairwise_similarity=mean_pairwise_similarity(features),
        mean_length=float(np.mean(lengths)),
        length_ks=length_ks(lengths, [len(t) for t in heldout_texts]),
        precision=precision,
        recall=recall,
    )


def length_histogram(samples: dict[str, Sequence[str]], bins: int = HISTOGRAM_BINS) -> dict:
    """Character-length histograms of named samples on shared bin edges, for the report's plot."""
    lengths = {name: np.array([len(t) for t in texts]) for name, texts in samples.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(lengths.values())), bins=bins)
    return {"edges": [float(e) for e in edges],
            "counts": {name: np.histogram(values, bins=edges)[0].tolist() for name, values in lengths.items()}}
