"""Word-level views of a text, shared by the filters and the diversity metrics.

Tokens are lower-cased words and single punctuation marks, so "Answer:" and "answer :" count as
the same n-grams; that is what matters for copy detection and distinct-n, not linguistic accuracy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SPACE = re.compile(r"\s+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def normalize_for_match(text: str) -> str:
    """Case- and whitespace-insensitive form used for exact-copy and exact-duplicate checks."""
    return _SPACE.sub(" ", text.lower()).strip()


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def repetition_ratio(tokens: list[str], n: int = 3) -> float:
    """Share of a text's word n-grams that repeat an earlier one: near 0 for prose, near 1 for loops."""
    grams = ngrams(tokens, n)
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def distinct_n(token_lists: Iterable[list[str]], n: int) -> float:
    """Distinct n-grams over all n-grams in a corpus (Li et al., 2016); low values mean mode collapse."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for tokens in token_lists:
        grams = ngrams(tokens, n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0
