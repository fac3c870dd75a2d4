"""Filters on real target text with a cheap, deterministic stand-in embedder (bag of hashed words)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_core.config import GateConfig
from synth_core.quality.features import CachedFeatures, unit_rows
from synth_core.quality.filters import filter_batch, length_bounds
from synth_core.quality.lexical import distinct_n, repetition_ratio, tokenize
from synth_core.quality.pii import PiiScanner
from synth_core.quality.similarity import greedy_near_duplicates, mean_pairwise_similarity

pytestmark = pytest.mark.unit

GSM8K = Path(__file__).resolve().parents[2] / "domains" / "data" / "gsm8k"


def bag_of_words(texts: list[str], dimension: int = 512) -> np.ndarray:
    """Hashed word counts: texts sharing most words get a cosine near 1, like a sentence embedder."""
    features = np.zeros((len(texts), dimension), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in tokenize(text):
            features[row, zlib.crc32(token.encode()) % dimension] += 1.0
    return unit_rows(features)


@pytest.fixture(scope="module")
def gsm8k_rows() -> list[str]:
    frame = pd.read_json(GSM8K / "test.jsonl", lines=True).head(80)
    return [f"Question: {q}\nAnswer: {a}" for q, a in zip(frame["question"], frame["answer"], strict=True)]


def test_leaked_rows_are_caught_by_exact_match_ngrams_and_similarity(gsm8k_rows):
    targets, others = gsm8k_rows[:40], gsm8k_rows[40:60]
    reworded = targets[1].replace("Question:", "Q:", 1)  # n-gram overlap stays near 100%
    batch = others + [targets[0].upper(), reworded]
    result = filter_batch(batch, targets, GateConfig(), bag_of_words)
    leaks = {row.index: row.detail for row in result.dropped if row.reason == "leakage"}
    assert set(leaks) == {20, 21}
    assert leaks[20] == "exact copy of target row 0" and "8-grams occur in target rows" in leaks[21]
    assert result.kept == list(range(20))


def test_near_duplicates_keep_the_first_of_each_cluster():
    features = unit_rows(np.array([[1, 0, 0], [1, 0.01, 0], [0, 1, 0], [0.01, 1, 0], [0, 0, 1]], dtype=np.float32))
    dropped = greedy_near_duplicates(features, threshold=0.99, block=2)
    assert {row: earlier for row, (earlier, _) in dropped.items()} == {1: 0, 3: 2}


def test_degenerate_rows_are_judged_against_the_target_lengths(gsm8k_rows):
    gate = GateConfig(length_quantiles=[0.0, 1.0], length_slack=0.5)
    low, high = length_bounds(gsm8k_rows, gate)
    lengths = [len(t) for t in gsm8k_rows]
    assert (low, high) == pytest.approx((min(lengths) * 0.5, max(lengths) * 1.5))
    assert repetition_ratio(tokenize("go on " * 50)) > 0.9 and repetition_ratio(tokenize(gsm8k_rows[0])) < 0.3


def test_pii_is_flagged_by_name_or_custom_regex_and_redacted():
    scanner = PiiScanner(["email", "phone", "card_number", r"regex:\bACME-\d{6}\b"])
    assert scanner.find("Write to a.b@example.org today") == "email"
    assert scanner.find("Call (555) 123-4567 now") == "phone"
    assert scanner.find("Card 4111 1111 1111 1111 on file") == "card_number"
    assert scanner.find("Ticket ACME-123456 closed") == r"regex:\bACME-\d{6}\b"
    assert scanner.find("She paid $12 for 3 apples, 48/2 = 24 left.") is None
    assert scanner.redact("Mail a.b@example.org") == "Mail [redacted email]"


def test_pii_detection_checks_what_a_regex_cannot():
    scanner = PiiScanner(["phone", "card_number", "iban"])
    assert scanner.find("Pay with 4111 1111 1111 1111.") == "card_number"  # Luhn-valid
    assert scanner.find("Order 1234567812345678 shipped.") is None  # 16 digits, not a card
    assert scanner.find("Ring the office on +44 20 7946 0958.") == "phone"
    assert scanner.find("Appelez le 01 23 45 67 89 pour un rendez-vous.") == "phone"
    assert scanner.find("She earned 6000-2000 = 4000 dollars after rent.") is None  # arithmetic, not a phone
    assert scanner.find("IBAN GB82 WEST 1234 5698 7654 32") == "iban"
    assert scanner.redact("Call +44 20 7946 0958 or pay 4111 1111 1111 1111") == (
        "Call [redacted phone] or pay [redacted card_number]")


def test_presidio_beats_the_old_regexes_on_the_labelled_set():
    from synth_core.bench.pii import LABELLED, labelled_scores, legacy_detector, presidio_detector

    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    old, new = labelled_scores(rows, legacy_detector()), labelled_scores(rows, presidio_detector())
    assert new["card_number"]["fp"] < old["card_number"]["fp"] and new["phone"]["recall"] > old["phone"]["recall"]
    for name in ("email", "phone", "card_number", "iban", "ip_address"):
        assert new[name]["recall"] >= 0.9 and new[name]["precision"] >= 0.9, (name, new[name])


def test_features_are_computed_once_per_text():
    calls: list[list[str]] = []

    def featurize(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return bag_of_words(texts)

    cached = CachedFeatures(featurize)
    first = cached(["a b", "c d", "a b"])
    second = cached(["c d", "e f"])
    assert calls == [["a b", "c d"], ["e f"]]
    assert np.array_equal(first[1], second[0])


def test_diversity_figures_fall_for_a_collapsed_sample(gsm8k_rows):
    collapsed = [gsm8k_rows[0]] * 10
    assert distinct_n([tokenize(t) for t in collapsed], 2) < 0.2 < distinct_n([tokenize(t) for t in gsm8k_rows], 2)
    assert mean_pairwise_similarity(bag_of_words(collapsed)) == pytest.approx(1.0, abs=1e-5)
    assert mean_pairwise_similarity(bag_of_words(gsm8k_rows)) < 0.9
