"""Oversample-and-select (quality/selection.py) on feature clouds with a known answer, and the `auto`
decoding rule (generation/auto_decoding.py) on a generator whose rows per setting are known: real GSM8K
rows at one temperature, rows of another domain at another, rows cut at the token cap at a third."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_core.config import ConfigError, GenerationConfig, load_domain
from synth_core.generation.auto_decoding import (
    choose_decoding,
    decoding_fingerprint,
    decoding_grid,
    fill_share,
    grid_rows,
    settle_decoding,
    with_decoding,
)
from synth_core.generation.decoding import DecodedBatch
from synth_core.models import load_embedder
from synth_core.quality.checks import RowChecks
from synth_core.quality.features import unit_rows
from synth_core.quality.filters import filter_batch
from synth_core.quality.mmd import gaussian_mmd, median_bandwidth
from synth_core.quality.selection import select_rows
from synth_core.sources import load_target_split, render_texts

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _clusters(rng, centres: np.ndarray, counts: list[int], noise: float = 0.05) -> np.ndarray:
    return unit_rows(np.concatenate([c + noise * rng.normal(size=(n, len(c))) for c, n in zip(centres, counts,
                                                                                              strict=True)]))


def test_selection_returns_the_requested_count_spread_like_the_train_rows():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4]
    train = _clusters(rng, centres, [300, 100, 50, 50])  # shares 0.6, 0.2, 0.1, 0.1
    candidates = _clusters(rng, centres, [100, 100, 100, 100])  # the generator's own, even spread
    far = unit_rows(np.eye(8)[6] + 0.05 * rng.normal(size=(40, 8)))  # off the targets' support
    selection = select_rows(np.concatenate([candidates, far]), train, count=100, quantile=0.95, seed=1)
    assert len(selection.selected) == 100 and len(set(selection.selected)) == 100
    assert set(selection.off_support) >= set(range(400, 440)) and len(selection.off_support) <= 440 * 0.1 + 40
    per_cluster = np.bincount(np.array(selection.selected) // 100, minlength=5)[:4]
    assert per_cluster.tolist() == pytest.approx([60, 20, 10, 10], abs=3)
    again = select_rows(np.concatenate([candidates, far]), train, count=100, quantile=0.95, seed=1)
    assert again.selected == selection.selected
    summary = selection.summary()
    assert summary["selected"] + summary["off_support"] + summary["not_selected"] == summary["candidates"] == 440


def test_selection_keeps_every_supported_row_when_there_are_too_few_and_null_turns_the_cut_off():
    rng = np.random.default_rng(1)
    train = _clusters(rng, np.eye(8)[:2], [100, 100])
    rows = np.concatenate([_clusters(rng, np.eye(8)[:2], [20, 20]), unit_rows(np.eye(8)[5][None, :])])
    few = select_rows(rows, train, count=100, quantile=0.95, seed=0)
    assert 40 in few.off_support and len(few.selected) == 41 - len(few.off_support) and few.clusters == 0
    uncut = select_rows(rows, train, count=100, quantile=None, seed=0)
    assert uncut.off_support == {} and len(uncut.selected) == 41 and uncut.summary()["support_threshold"] is None


def test_oversample_and_auto_settings_are_validated_naming_the_key():
    assert GenerationConfig(num_samples=100, oversample=1.5).candidate_rows == 150
    assert GenerationConfig().auto_decoding and not GenerationConfig(temperature=0.7, top_p=0.9).auto_decoding
    config = load_domain(REPO / "domains" / "boolq.yaml")
    for key, value, message in (("generation.temperature", "warm", "generation.temperature='warm'"),
                                ("generation.top_p", 1.5, "must be auto or in (0, 1]"),
                                ("generation.oversample", 0.5, "generation.oversample=0.5"),
                                ("generation.auto_top_ps", [], "generation.auto_top_ps=[]"),
                                ("source.validation_fraction", 0.8, "rows must be left to train on")):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            config.with_overrides({key: value})


def test_grid_tries_only_the_values_left_to_auto():
    both = GenerationConfig(auto_temperatures=[0.7, 1.0], auto_top_ps=[0.9, 1.0])
    assert decoding_grid(both) == [(0.7, 0.9), (0.7, 1.0), (1.0, 0.9), (1.0, 1.0)]
    assert decoding_grid(GenerationConfig(temperature=0.8, auto_top_ps=[0.9, 1.0])) == [(0.8, 0.9), (0.8, 1.0)]


def test_auto_grid_rows_buy_more_short_rows_for_the_same_tokens():
    assert [grid_rows(GenerationConfig(max_new_tokens=cap)) for cap in (32, 128, 352, 528)] == [256, 176, 64, 64]
    assert grid_rows(GenerationConfig(max_new_tokens=32, auto_rows=40)) == 40
    with pytest.raises(ValueError, match="generation.auto_rows=0: must be auto or > 0"):
        GenerationConfig(auto_rows=0)


@dataclass
class ScriptedGenerator:
    """Rows fixed per temperature: stands in for the LM so the rule is tested on known outcomes."""

    settings: GenerationConfig
    rows_by_temperature: dict[float, tuple[list[str], bool]]
    variant: str = "scripted"
    checkpoint_hash: str = ""
    lm: object = None

    def sample(self, sample_indices: list[int], seed: int) -> tuple[DecodedBatch, list[int]]:
        texts, finished = self.rows_by_temperature[self.settings.temperature]
        chosen = [texts[j % len(texts)] for j in sample_indices]
        return DecodedBatch(chosen, [10] * len(chosen), [finished] * len(chosen)), list(sample_indices)


@pytest.fixture(scope="module")
def gsm8k():
    config = load_domain(REPO / "domains" / "gsm8k.yaml").with_overrides({
        "generation.auto_temperatures": [0.7, 0.85, 1.0], "generation.auto_top_ps": [0.95],
        "generation.auto_rows": 40, "generation.batch_size": 20, "gate.mauve_seeds": [0]})
    test = render_texts(config, pd.read_json(REPO / "domains/data/gsm8k/test.jsonl", lines=True))
    mbpp = load_domain(REPO / "domains" / "mbpp.yaml")
    other = render_texts(mbpp, pd.read_json(REPO / "domains/data/mbpp/test.jsonl", lines=True))
    embedder = load_embedder(config.generator)
    return config, test, other, embedder


def test_auto_keeps_the_valid_on_distribution_setting_and_leaves_the_generator_as_it_was(gsm8k):
    config, test, other, embedder = gsm8k
    # real rows (valid, on distribution); real rows that never finished (cut at the cap); rows that pass the
    # checks but are another domain's text with a GSM8K answer line glued on
    off_topic = [f"Question: {row}\nAnswer: 2 + 2 = 4\n#### 4" for row in other[:40]]
    generator = ScriptedGenerator(GenerationConfig(temperature=1.0, top_p=0.95, auto_rows=40),
                                  {0.7: (test[:40], True), 0.85: (off_topic, True), 1.0: (test[40:80], False)})
    validation = load_target_split(config).validation
    choice = choose_decoding(generator, config, validation, embedder.encode_cached)
    tried = {row["temperature"]: row for row in choice.tried}
    assert tried[1.0]["valid_rate"] == 0.0 and tried[1.0]["mmd"] is None  # cut rows are invalid, unscored
    assert tried[0.7]["valid_rate"] == tried[0.85]["valid_rate"] == 1.0
    assert tried[0.7]["mmd"] < tried[0.85]["mmd"]
    # per check, so a reviewer sees which check a setting's rows fail: the glued-on answer passes every one
    assert set(tried[0.85]["check_pass_rates"]) == {check.name for check in config.checks}
    assert set(tried[0.85]["check_pass_rates"].values()) == {1.0}
    assert (choice.temperature, choice.top_p) == (0.7, 0.95) and "lowest MMD" in choice.rule
    assert generator.settings.temperature == 1.0  # restored after trying the grid
    record = settle_decoding(generator, config, validation, embedder.encode_cached)
    assert generator.settings.temperature == 0.7 and record["tried"] == list(choice.tried)
    assert with_decoding(config, record).generation.temperature == 0.7


def test_validity_beyond_what_fills_the_batch_does_not_outrank_closeness(gsm8k):
    config, test, _, embedder = gsm8k
    # 0.7: varied real rows, 70% valid (the rest lost their answer line); 0.85: every row valid, but three rows over
    cut = [row.rsplit("\n####", 1)[0] for row in test[28:40]]
    generator = ScriptedGenerator(GenerationConfig(temperature=1.0, top_p=0.95, auto_rows=40),
                                  {0.7: (test[:28] + cut, True), 0.85: (test[40:43], True), 1.0: (test[:40], False)})
    validation = load_target_split(config).validation
    oversampled = choose_decoding(generator, config, validation, embedder.encode_cached)
    tried = {row["temperature"]: row for row in oversampled.tried}
    assert tried[0.7]["valid_rate"] == 0.7 and tried[0.85]["valid_rate"] == 1.0
    assert tried[0.7]["mmd"] < tried[0.85]["mmd"]
    # per check, so a reviewer sees which check a setting's rows fail: the glued-on answer passes every one
    assert set(tried[0.85]["check_pass_rates"]) == {check.name for check in config.checks}
    assert set(tried[0.85]["check_pass_rates"].values()) == {1.0}
    assert fill_share(config.generation) == pytest.approx(1 / (2 * 0.95))  # oversample 2, support cut at 0.95
    assert oversampled.temperature == 0.7 and "enough to fill the batch (53%)" in oversampled.rule
    # without oversampling every valid row is needed: validity within the slack of the best decides first
    exact = config.with_overrides({"generation.oversample": 1.0})
    assert choose_decoding(generator, exact, validation, embedder.encode_cached).temperature == 0.85
    assert decoding_fingerprint(exact, "ckpt", "snap") != decoding_fingerprint(config, "ckpt", "snap")


def test_mmd_reads_zero_for_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(150, 16))
    bandwidth = median_bandwidth(reference)
    same, near, far = (rng.normal(size=(50, 16)) + shift for shift in (0.0, 0.3, 1.0))
    scores = [gaussian_mmd(rows, reference, bandwidth) for rows in (same, near, far)]
    assert abs(scores[0]) < 0.01 and scores[0] < scores[1] < scores[2]
    assert gaussian_mmd(reference, reference, bandwidth) < 0  # unbiased: the diagonal is left out
    with pytest.raises(ValueError, match="at least 2 rows"):
        gaussian_mmd(same[:1], reference, bandwidth)


def test_fixed_decoding_is_not_tuned_and_the_fingerprint_follows_what_the_choice_depends_on(gsm8k):
    config, test, _, embedder = gsm8k
    fixed = config.with_overrides({"generation.temperature": 0.9, "generation.top_p": 0.8})
    generator = ScriptedGenerator(GenerationConfig(temperature=1.0, top_p=0.95), {})  # sampling would fail
    assert settle_decoding(generator, fixed, test, embedder.encode_cached) == {"temperature": 0.9, "top_p": 0.8,
                                                                             "auto": False}
    base = decoding_fingerprint(config, "ckpt", "snap")
    assert base == decoding_fingerprint(config.with_overrides({"generation.num_samples": 7}), "ckpt", "snap")
    for changed in (decoding_fingerprint(config, "other", "snap"), decoding_fingerprint(config, "ckpt", "other"),
                    decoding_fingerprint(config.with_overrides({"generation.auto_rows": 8}), "ckpt", "snap"),
                    decoding_fingerprint(config.with_overrides({"checks": []}), "ckpt", "snap")):
        assert changed != base


def test_a_batch_whose_every_row_fails_a_check_is_filtered_with_the_real_embedder(gsm8k):
    config, test, _, embedder = gsm8k
    assert embedder.encode_cached([]).shape == (0, embedder.dimension)
    rows = [text.split("####")[0] for text in test[:5]]  # no answer line: every row fails gsm8k's check
    filtered = filter_batch(rows, test[5:40], config.gate, embedder.encode_cached, checks=RowChecks(config.checks))
    assert filtered.kept == [] and {row.reason for row in filtered.dropped} == {"failed_check"}
