"""Cosine-similarity searches over unit-normalised features, in row blocks to bound memory.

A batch of n rows against m targets never materialises more than `block` x max(n, m) similarities.
"""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 1024


def nearest(queries: np.ndarray, corpus: np.ndarray, block: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index of and cosine similarity to its most similar corpus row."""
    best_index = np.zeros(len(queries), dtype=np.int64)
    best_similarity = np.full(len(queries), -1.0, dtype=np.float32)
    if len(corpus) == 0:
        return best_index, best_similarity
    for start in range(0, len(queries), block):
        similarities = queries[start:start + block] @ corpus.T  # (block, m)
        best_index[start:start + block] = similarities.argmax(axis=1)
        best_similarity[start:start + block] = similarities.max(axis=1)
    return best_index, best_similarity


def greedy_near_duplicates(features: np.ndarray, threshold: float,
                           block: int = BLOCK_ROWS) -> dict[int, tuple[int, float]]:
    """Rows to drop as near-duplicates, each mapped to (the earlier kept row it repeats, similarity).

    Greedy in batch order: a row is dropped when it is at least `threshold` similar to an earlier row
    that was kept, so every cluster of near-copies keeps exactly its first member.
    """
    earlier_neighbours: list[list[tuple[int, float]]] = []
    for start in range(0, len(features), block):
        similarities = features[start:start + block] @ features.T  # (block, n)
        for offset, row in enumerate(similarities):
            i = start + offset
            hits = np.flatnonzero(row[:i] >= threshold)
            earlier_neighbours.append([(int(j), float(row[j])) for j in hits])
    dropped: dict[int, tuple[int, float]] = {}
    for i, neighbours in enumerate(earlier_neighbours):
        kept = [(j, s) for j, s in neighbours if j not in dropped]
        if kept:
            dropped[i] = max(kept, key=lambda pair: pair[1])
    return dropped


def mean_pairwise_similarity(features: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs: high values mean the rows say the same thing."""
    n = len(features)
    if n < 2:
        return 0.0
    total = features.sum(axis=0)
    # sum over all ordered pairs i != j of <f_i, f_j> = |sum f|^2 - sum |f_i|^2
    off_diagonal = float(total @ total) - float(np.einsum("ij,ij->", features, features))
    return off_diagonal / (n * (n - 1))
