"""Filters that run before scoring: degenerate text, the domain's row checks, PII, leakage of target
rows, duplicates.

Each row is dropped for the first reason that applies, in `DROP_REASONS` order, and every drop is
recorded with a human-readable detail. Leakage runs before de-duplication so that ten copies of a
target row count as ten leaked rows: the leakage rate is a gate criterion of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from synth_core.config import GateConfig
from synth_core.quality.checks import CheckResults, RowChecks
from synth_core.quality.features import unit_rows
from synth_core.quality.lexical import ngrams, normalize_for_match, repetition_ratio, tokenize
from synth_core.quality.pii import PiiScanner
from synth_core.quality.similarity import greedy_near_duplicates, nearest

DROP_REASONS = ("empty", "unfinished", "too_short", "too_long", "repetition", "failed_check", "pii", "leakage",
                "exact_duplicate", "near_duplicate", "off_support")  # off_support: quality/selection.py


@dataclass(frozen=True)
class DroppedRow:
    index: int  # position in the synthetic batch
    text: str
    reason: str
    detail: str

    def to_dict(self) -> dict:
        return {"index": self.index, "reason": self.reason, "detail": self.detail, "text": self.text}


@dataclass
class FilterResult:
    kept: list[int]  # positions in the synthetic batch, in order
    screened: list[int]  # positions that passed the degenerate-text and PII screens and met the leakage check
    dropped: list[DroppedRow]
    length_bounds: tuple[float, float]
    checks: CheckResults | None = None  # the declared checks on the rows that reached them (None: none declared)


def count_by_reason(dropped: Sequence[DroppedRow]) -> dict[str, int]:
    """Dropped rows per reason, every reason present (zeros included) in filter order."""
    by_reason = dict.fromkeys(DROP_REASONS, 0)
    for row in dropped:
        by_reason[row.reason] += 1
    return by_reason


def length_bounds(target_texts: Sequence[str], gate: GateConfig) -> tuple[float, float]:
    """Allowed character lengths: the targets' configured quantiles, widened by `length_slack`."""
    low_q, high_q = np.quantile([len(t) for t in target_texts], gate.length_quantiles)
    return float(low_q) * (1.0 - gate.length_slack), float(high_q) * (1.0 + gate.length_slack)


def _degenerate_reason(text: str, tokens: list[str], bounds: tuple[float, float],
                       gate: GateConfig) -> tuple[str, str] | None:
    if not text.strip():
        return "empty", "no visible characters"
    if len(text) < bounds[0]:
        return "too_short", f"{len(text)} characters < {bounds[0]:.0f}"
    if len(text) > bounds[1]:
        return "too_long", f"{len(text)} characters > {bounds[1]:.0f}"
    repetition = repetition_ratio(tokens)
    if repetition > gate.max_repetition:
        return "repetition", f"{repetition:.0%} of word trigrams repeat (max {gate.max_repetition:.0%})"
    return None


class LeakageGuard:
    """Recognises exact and near copies of target rows (n-gram overlap, embedding similarity)."""

    def __init__(self, target_texts: Sequence[str], target_features: np.ndarray, gate: GateConfig) -> None:
        self._gate = gate
        self._exact = {normalize_for_match(t): i for i, t in enumerate(target_texts)}
        self._target_ngrams = {g for t in target_texts for g in ngrams(tokenize(t), gate.leakage_ngram)}
        self._target_features = target_features

    def find(self, texts: Sequence[str], features: np.ndarray) -> dict[int, str]:
        """Positions in `texts` that copy a target row, each with how it was recognised."""
        gate = self._gate
        nearest_target, similarity = nearest(features, self._target_features)
        leaks: dict[int, str] = {}
        for i, text in enumerate(texts):
            exact = self._exact.get(normalize_for_match(text))
            grams = ngrams(tokenize(text), gate.leakage_ngram)
            overlap = sum(g in self._target_ngrams for g in grams) / len(grams) if grams else 0.0
            if exact is not None:
                leaks[i] = f"exact copy of target row {exact}"
            elif overlap >= gate.leakage_ngram_overlap:
                leaks[i] = (f"{overlap:.0%} of its {gate.leakage_ngram}-grams occur in target rows "
                            f"(max {gate.leakage_ngram_overlap:.0%})")
            elif similarity[i] >= gate.leakage_similarity:
                leaks[i] = (f"cosine {similarity[i]:.3f} to target row {nearest_target[i]} "
                            f"(max {gate.leakage_similarity})")
        return leaks


def filter_batch(texts: Sequence[str], target_texts: Sequence[str], gate: GateConfig,
                 embed: Callable[[Sequence[str]], np.ndarray], finished: Sequence[bool] | None = None,
                 checks: RowChecks | None = None) -> FilterResult:
    """Drop cut-off, degenerate, check-failing, PII-bearing, leaked and duplicate rows; `embed` features
    texts (cached). `checks`: the domain's row checks, run on the rows that are not cut off or degenerate.

    `finished[i]` says whether row i ended by end-of-sequence or a stop (False: cut at the token cap);
    None when the batch does not record it. Every dropped row's text is PII-redacted: it is evidence in
    the gate report, which reviewers read and quarantine keeps.
    """
    bounds = length_bounds(target_texts, gate)
    scanner = PiiScanner(gate.pii_patterns)
    dropped: list[DroppedRow] = []
    sound: list[int] = []
    for i, text in enumerate(texts):
        cut_off = gate.drop_unfinished and finished is not None and not finished[i] and bool(text.strip())
        degenerate = (("unfinished", "stopped at generation.max_new_tokens, not at an end of sequence")
                      if cut_off else _degenerate_reason(text, tokenize(text), bounds, gate))
        if degenerate:
            dropped.append(DroppedRow(i, scanner.redact(text), *degenerate))
        else:
            sound.append(i)
    results = checks.run([texts[i] for i in sound]) if checks else None
    failures = results.failures if results else [None] * len(sound)
    survivors: list[int] = []
    for i, failed in zip(sound, failures, strict=True):
        text = texts[i]
        pii = None if failed else scanner.find(text)
        if failed:
            dropped.append(DroppedRow(i, scanner.redact(text), "failed_check", failed))
        elif pii:
            dropped.append(DroppedRow(i, scanner.redact(text), "pii", f"matches PII pattern {pii!r} (redacted)"))
        else:
            survivors.append(i)

    features = unit_rows(embed([texts[i] for i in survivors]))
    guard = LeakageGuard(target_texts, unit_rows(embed(list(target_texts))), gate)
    leaks = guard.find([texts[i] for i in survivors], features)
    dropped += [DroppedRow(survivors[k], texts[survivors[k]], "leakage", why) for k, why in leaks.items()]
    clean = [k for k in range(len(survivors)) if k not in leaks]

    first_seen: dict[str, int] = {}
    unique: list[int] = []
    for k in clean:
        i = survivors[k]
        earlier = first_seen.setdefault(normalize_for_match(texts[i]), i)
        if earlier != i:
            dropped.append(DroppedRow(i, texts[i], "exact_duplicate", f"same text as row {earlier}"))
        else:
            unique.append(k)

    near = greedy_near_duplicates(features[unique], gate.near_duplicate_similarity)
    for u, (v, similarity) in near.items():
        i, earlier = survivors[unique[u]], survivors[unique[v]]
        dropped.append(DroppedRow(i, texts[i], "near_duplicate", f"cosine {similarity:.3f} to row {earlier}"))
    kept = sorted(survivors[unique[u]] for u in range(len(unique)) if u not in near)
    return FilterResult(kept, survivors, sorted(dropped, key=lambda row: row.index), bounds, results)
