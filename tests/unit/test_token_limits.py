"""`auto` token limits: measured on the train rows, so neither training nor generation cuts the targets."""

from __future__ import annotations

import pytest

from synth_core.config import AUTO, ConfigError
from synth_core.generation.factory import build_generator
from synth_core.softprompt.training import tokenize_targets, train_soft_prompt
from synth_core.token_limits import covering_length, resolve_token_limits, token_counts

pytestmark = pytest.mark.unit


def test_the_covering_length_holds_all_but_the_longest_half_percent_with_their_end():
    assert covering_length([10] * 199 + [1000]) == 16  # one outlier in 200 does not set the limit
    assert covering_length([10] * 100 + [40]) == 48  # one in 101 is more than 0.5%: covered, + EOS, rounded up
    assert covering_length([15]) == 16 and covering_length([16]) == 32  # the EOS token needs its own place
    with pytest.raises(ValueError, match="no train rows"):
        covering_length([])


def test_auto_limits_follow_the_train_rows_and_fixed_ones_stay(tiny_config, tiny_lm, gsm8k_targets):
    auto = tiny_config.with_overrides({"soft_prompt.max_length": AUTO, "generation.max_new_tokens": AUTO})
    resolved = resolve_token_limits(auto, tiny_lm.tokenizer, gsm8k_targets.train)
    counts = token_counts(tiny_lm.tokenizer, gsm8k_targets.train)
    length = resolved.soft_prompt.max_length
    assert length == resolved.generation.max_new_tokens == covering_length(counts) > 48
    assert sum(n < length for n in counts) / len(counts) >= 0.995
    rows = tokenize_targets(tiny_lm.tokenizer, gsm8k_targets.train, length)
    assert sum(row[-1] == tiny_lm.tokenizer.eos_token_id for row in rows) >= 0.995 * len(rows)  # trained whole
    mixed = resolve_token_limits(auto.with_overrides({"generation.max_new_tokens": 8}), tiny_lm.tokenizer,
                                 gsm8k_targets.train)
    assert (mixed.soft_prompt.max_length, mixed.generation.max_new_tokens) == (length, 8)
    assert resolve_token_limits(tiny_config, tiny_lm.tokenizer, []) is tiny_config  # nothing auto: nothing measured


def test_training_and_the_generator_resolve_auto_limits(tiny_config, tiny_lm, embedder, gsm8k_targets, tmp_path):
    auto = tiny_config.with_overrides({"soft_prompt.max_length": AUTO, "generation.max_new_tokens": AUTO,
                                       "soft_prompt.steps": 1})
    length = covering_length(token_counts(tiny_lm.tokenizer, gsm8k_targets.train))
    result = train_soft_prompt(auto, tiny_lm, embedder, gsm8k_targets, tmp_path)
    assert result.max_length == length
    generator, _ = build_generator(auto, result.checkpoint_dir, lm=tiny_lm, embedder=embedder, targets=gsm8k_targets)
    assert generator.settings.max_new_tokens == length
    batch, _ = generator.sample([0, 1], seed=0)
    assert max(batch.new_tokens) <= length


@pytest.mark.parametrize("key, value, why", [("soft_prompt.max_length", 0, "must be auto or > 0"),
                                             ("generation.max_new_tokens", -5, "must be auto or > 0"),
                                             ("generation.max_new_tokens", "long", "expected int; or must be one of")])
def test_a_bad_token_limit_names_the_key_and_value(tiny_config, key, value, why):
    with pytest.raises(ConfigError, match=f"{key}={value!r}: {why}"):
        tiny_config.with_overrides({key: value})
