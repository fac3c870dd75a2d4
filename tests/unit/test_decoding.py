"""Our KV-cached sampling loop against `transformers` generate on the tiny random LM."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from synth_core.generation.decoding import (
    STOP_CHECK_EVERY,
    _draw,
    last_position_logits,
    sample_batch,
    sample_next_token,
)

pytestmark = pytest.mark.unit


def test_near_zero_temperature_matches_greedy_generate_with_a_soft_prefix(tiny_lm, tiny_config):
    settings = dataclasses.replace(tiny_config.generation, temperature=1e-6, top_p=1.0, max_new_tokens=12)
    prefix = torch.randn(3, 4, tiny_lm.hidden_size) * 0.1
    ours = sample_batch(tiny_lm, settings, seed=0, inputs_embeds=prefix)
    reference = tiny_lm.model.generate(inputs_embeds=prefix, attention_mask=torch.ones(3, 4, dtype=torch.long),
                                       do_sample=False, max_new_tokens=12, min_new_tokens=12,
                                       pad_token_id=tiny_lm.tokenizer.pad_token_id)
    expected = [tiny_lm.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
                for row, n in zip(reference.tolist(), ours.new_tokens, strict=True)]
    assert ours.texts == expected


def test_left_padded_prompts_decode_like_unpadded_ones(tiny_lm, tiny_config):
    settings = dataclasses.replace(tiny_config.generation, temperature=1e-6, top_p=1.0, max_new_tokens=8)
    tokenizer = tiny_lm.tokenizer
    tokenizer.padding_side = "left"
    prompts = ["Question: what is two plus two?", "Hi"]
    padded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    together = sample_batch(tiny_lm, settings, 0, input_ids=padded["input_ids"],
                            attention_mask=padded["attention_mask"])
    alone = [sample_batch(tiny_lm, settings, 0, input_ids=tokenizer([p], return_tensors="pt")["input_ids"],
                          attention_mask=tokenizer([p], return_tensors="pt")["attention_mask"]).texts[0]
             for p in prompts]
    assert together.texts == alone


def test_nucleus_sampling_never_leaves_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 2000))
    draws = sample_next_token(logits, 1.0, 0.7, torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.7; 2 and 3 are outside
    share = (draws == 0).float().mean().item()
    assert abs(share - 0.5 / 0.8) < 0.04


def test_a_wide_nucleus_is_sampled_exactly():
    weights = torch.linspace(2.0, 1.0, 1000)  # flat and strictly decreasing: the 0.9 nucleus holds ~880 tokens
    probs = weights / weights.sum()
    nucleus = int(((probs.cumsum(0) - probs) < 0.9).sum())
    draws = sample_next_token(probs.log().expand(20000, -1), 1.0, 0.9, torch.Generator().manual_seed(0))
    assert nucleus > 800 and draws.max().item() < nucleus  # never outside the nucleus
    assert draws.max().item() > nucleus - 20  # and reaching its edge
    early, late = (draws < 100).float().mean().item(), (draws >= nucleus - 100).float().mean().item()
    expected = probs[:100].sum().item() / probs[:nucleus].sum().item(), \
        probs[nucleus - 100:nucleus].sum().item() / probs[:nucleus].sum().item()
    assert abs(early - expected[0]) < 0.01 and abs(late - expected[1]) < 0.01


def test_two_level_draw_follows_the_weights_across_block_edges_and_never_hits_a_zero():
    weights = torch.rand(1000)  # 1000 columns: four blocks of 256, the last one padded
    weights[[0, 255, 256, 511, 767, 768, 999]] = 0.0  # zeros at both edges of blocks and of the vocabulary
    weights[256:512] = 0.0  # the second block holds no weight at all
    weights[700] = 50.0  # one heavy column: most draws land on it
    draws = _draw(weights.expand(200_000, -1), torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=1000).float()
    assert counts[weights == 0].sum().item() == 0
    expected = weights / weights.sum()
    assert abs(counts[700].item() / len(draws) - expected[700].item()) < 0.005
    per_block = torch.stack([counts[i:i + 256].sum() for i in range(0, 1000, 256)]) / len(draws)
    assert torch.allclose(per_block, torch.stack([expected[i:i + 256].sum() for i in range(0, 1000, 256)]), atol=0.005)


def test_whole_distribution_draws_follow_the_probabilities():
    probs = torch.tensor([0.6, 0.0, 0.3, 0.1])
    draws = sample_next_token(probs.log().expand(20000, -1), 1.0, 1.0, torch.Generator().manual_seed(0))
    shares = torch.bincount(draws, minlength=4).float() / len(draws)
    assert shares[1].item() == 0.0 and torch.allclose(shares, probs, atol=0.01)


def test_rows_that_stop_early_leave_the_batch_without_changing_the_others(tiny_lm, tiny_config):
    settings = dataclasses.replace(tiny_config.generation, temperature=1e-6, top_p=1.0, max_new_tokens=24)
    tokenizer = tiny_lm.tokenizer
    tokenizer.padding_side = "left"
    padded = tokenizer(["Question: what is two plus two?", "Hi", "Example 1:\nsome text"], return_tensors="pt",
                       padding=True, add_special_tokens=False)
    full = sample_batch(tiny_lm, settings, 0, input_ids=padded["input_ids"], attention_mask=padded["attention_mask"])
    first_tokens = tokenizer.decode(tokenizer(full.texts[0])["input_ids"][:3])
    stopped = sample_batch(tiny_lm, settings, 0, input_ids=padded["input_ids"],
                           attention_mask=padded["attention_mask"], stop=re.compile(re.escape(first_tokens)))
    assert stopped.finished[0] and stopped.new_tokens[0] == STOP_CHECK_EVERY
    assert stopped.texts[0].startswith(first_tokens.strip())
    others = [i for i in (1, 2) if first_tokens not in full.texts[i]]
    assert others and [stopped.texts[i] for i in others] == [full.texts[i] for i in others]


def test_last_position_logits_match_the_model_s_own_forward_pass(tiny_lm, monkeypatch):
    embeds = torch.randn(3, 5, tiny_lm.hidden_size) * 0.1
    with torch.no_grad():
        reference = tiny_lm.model(inputs_embeds=embeds).logits[:, -1:]
        ours = last_position_logits(tiny_lm.model, inputs_embeds=embeds).logits
        monkeypatch.setattr(tiny_lm.model.config, "final_logit_softcapping", 30.0, raising=False)
        own_forward = last_position_logits(tiny_lm.model, inputs_embeds=embeds).logits  # its forward, not ours
    assert torch.allclose(ours, reference, atol=1e-5) and torch.allclose(own_forward, reference, atol=1e-5)


def test_rows_admitted_as_others_finish_decode_as_they_would_alone(tiny_lm, tiny_config):
    """With room for 3 of 5 rows, the first row stops early (a stop pattern) and the fourth comes in beside rows
    that are 8 tokens further on, at other cache columns; every row must decode as it does alone, and each row's
    length and end must stay its own."""
    settings = dataclasses.replace(tiny_config.generation, temperature=1e-6, top_p=1.0, max_new_tokens=24)
    tokenizer = tiny_lm.tokenizer
    tokenizer.padding_side = "left"
    prompts = ["Question: what is two plus two?", "Hi", "Example 1:\nsome text", "A", "Numbers: 1, 2, 3"]
    padded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    full = sample_batch(tiny_lm, settings, 0, input_ids=padded["input_ids"], attention_mask=padded["attention_mask"])
    stop = re.compile(re.escape(tokenizer.decode(tokenizer(full.texts[0])["input_ids"][:3])))
    refilled = sample_batch(tiny_lm, settings, 0, input_ids=padded["input_ids"],
                            attention_mask=padded["attention_mask"], stop=stop, live=3)
    alone = []
    for prompt in prompts:
        encoded = tokenizer([prompt], return_tensors="pt")
        alone.append(sample_batch(tiny_lm, settings, 0, input_ids=encoded["input_ids"],
                                  attention_mask=encoded["attention_mask"], stop=stop))
    assert refilled.finished[0] and refilled.new_tokens[0] == STOP_CHECK_EVERY
    assert refilled.texts == [row.texts[0] for row in alone]
    assert refilled.new_tokens == [row.new_tokens[0] for row in alone]
    assert refilled.finished == [row.finished[0] for row in alone]


def test_a_soft_prefix_batch_decodes_the_same_with_less_room(tiny_lm, tiny_config):
    """Room for 2 of 5 rows (three admissions) gives the rows that room for all 5 gives: near-greedy decoding
    depends on each row's own prefix only."""
    settings = dataclasses.replace(tiny_config.generation, temperature=1e-6, top_p=1.0, max_new_tokens=10)
    prefix = torch.randn(5, 4, tiny_lm.hidden_size, generator=torch.Generator().manual_seed(1)) * 0.1
    together = sample_batch(tiny_lm, settings, 0, inputs_embeds=prefix)
    narrow = sample_batch(tiny_lm, settings, 0, inputs_embeds=prefix, live=2)
    assert narrow == together


def test_dropping_rows_moves_one_kept_row_per_gap():
    """Rows 1 and 4 finish: row 5 fills the gap at 1 and every other kept row stays where it is."""
    from synth_core.generation.decoding import compacting_order

    order = compacting_order(torch.tensor([True, False, True, True, False, True]))
    assert order.tolist() == [0, 5, 2, 3]
    assert compacting_order(torch.tensor([False, False, True])).tolist() == [2]
    assert compacting_order(torch.tensor([True, True])).tolist() == [0, 1]
