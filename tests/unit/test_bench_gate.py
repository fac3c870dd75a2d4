"""`synth bench gate` at smoke scale: the degradations, and the error-rate plumbing on real seed rows with
a cheap stand-in embedder (the real figures come from the bench itself, see docs/BENCHMARKS.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from synth_core.bench.gate import (
    DEGRADATIONS,
    BenchPlan,
    cut_in_half,
    degraded_batch,
    domain_error_rates,
    edit_words,
    markdown_table,
    plot,
    shuffle_sentences,
)
from synth_core.bench.quality import real_test_texts
from synth_core.config import load_domain
from synth_core.sources import TargetSplit, load_target_split
from tests.unit.conftest import REPO
from tests.unit.test_quality_filters import bag_of_words

pytestmark = pytest.mark.unit


def test_degradations_change_every_row_the_way_they_say():
    rng = np.random.default_rng(0)
    row = "Question: Tom has 3 apples. He buys 2 more.\nAnswer: 3 + 2 = 5\n#### 5"
    shuffled = shuffle_sentences(row, rng)
    assert shuffled != row and sorted(shuffled.replace("\n", " ").split()) == sorted(row.replace("\n", " ").split())
    assert shuffled.count("\n") == row.count("\n")  # separators stay where they were
    assert shuffle_sentences("one sentence only", rng) == "one sentence only"
    assert cut_in_half(row, rng) == row[: len(row) // 2]
    edited = edit_words(row, rng)
    assert edited != row and len(edited.split(" ")) == len(row.split(" "))  # one word gone, one doubled
    copies = degraded_batch("one_row_edited", [row, "other", "rows"], rng, {})
    assert len(copies) == 3 and all(c.startswith("Question:") or c.startswith("Tom") for c in copies)
    other = degraded_batch("other_domain", [row] * 4, rng, {"other_domain": list("abcdef")})
    assert len(other) == 4 and set(other) <= set("abcdef")


def test_error_rates_on_real_rows_at_smoke_scale(tmp_path):
    config = load_domain(REPO / "domains" / "gsm8k.yaml").with_overrides(
        {"gate.mauve_resamples": 10, "gate.mauve_seeds": [0], "gate.min_rows": 20})
    split = load_target_split(config)
    targets = TargetSplit(split.train[:120], split.heldout[:60], split.snapshot_hash)
    boolq = load_domain(REPO / "domains" / "boolq.yaml")
    pools = {"other_domain": real_test_texts(boolq, 80)}
    with threadpool_limits(limits=1):
        result = domain_error_rates(config, targets, real_test_texts(config, 80), pools, bag_of_words,
                                    BenchPlan(sizes=(40, 500), real_trials=1, bad_trials=1))
    assert list(result["sizes"]) == ["40"]  # 500 > the 80 test rows: skipped
    row = result["sizes"]["40"]
    assert row["scored_rows"] == 40 and row["false_rejection"]["trials"] == 1
    expected = {d.name for d in DEGRADATIONS} - {"hard_prompt", "untrained"}  # no generated pools given
    assert set(row["false_acceptance"]) == expected
    for name in ("cut_in_half", "shuffled_sentences"):  # every row fails gsm8k's checks
        outcome = row["false_acceptance"][name]["outcomes"][0]
        assert outcome["decision"] == "fail" and any("valid_rate" in r for r in outcome["reasons"]), name
    assert row["false_acceptance"]["other_domain"]["outcomes"][0]["decision"] == "fail"  # too short, then unscored
    results = {"domains": [result]}
    assert "| gsm8k | 40 (scored 40) |" in markdown_table(results)
    plot(results, tmp_path / "rates.png")
    assert (tmp_path / "rates.png").stat().st_size > 0
    json.dumps(results)  # results.json must serialise
