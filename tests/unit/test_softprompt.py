"""SoftSRV core on a tiny random LM with SmolLM2's real tokenizer, against real GSM8K target texts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth_core.softprompt import VARIANT_REGISTRY, build_soft_prompt
from synth_core.softprompt.checkpoint import load_checkpoint, save_checkpoint, theta_hash
from synth_core.softprompt.training import (
    LENGTH_POOL,
    batch_rows,
    collate,
    row_nll,
    target_nll,
    tokenize_targets,
    train_soft_prompt,
    training_loss,
    warn_about_long_targets,
)

pytestmark = pytest.mark.unit


def _lm_fingerprint(lm) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


@pytest.mark.parametrize("variant", ["nsp", "mpk", "mc"])
def test_every_variant_makes_soft_tokens_of_the_lm_hidden_size_at_token_scale(variant, tiny_lm):
    cls = VARIANT_REGISTRY[variant]
    hyper = {"num_tokens": 5, "hidden_size": tiny_lm.hidden_size, "context_dim": 384,
             **{key: 4 for key in cls.config_keys}}
    embeddings = tiny_lm.model.get_input_embeddings().weight.detach()
    prompt = build_soft_prompt(variant, hyper, token_embeddings=embeddings,
                               generator=torch.Generator().manual_seed(0))
    tokens = prompt(torch.randn(3, 384))
    assert tokens.shape == (3, 5, tiny_lm.hidden_size)
    ratio = float(tokens.detach().std() / embeddings.std())
    assert 0.5 < ratio < 2.0, f"{variant} soft tokens start at {ratio:.2f}x the token-embedding scale"


def test_unknown_variant_names_the_bad_value():
    with pytest.raises(ValueError, match="'xyz'"):
        build_soft_prompt("xyz", {})


def test_a_target_cut_at_max_length_gets_no_end_of_sequence(tiny_lm):
    eos = tiny_lm.tokenizer.eos_token_id
    text = "a target text long enough to be cut at eight tokens, well past them"
    whole = tiny_lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    cut, fits = tokenize_targets(tiny_lm.tokenizer, [text], 8)[0], tokenize_targets(tiny_lm.tokenizer, [text], 64)[0]
    assert cut == whole[:8] and eos not in cut  # the model must not learn to stop where the cut fell
    assert fits == whole + [eos]


def test_targets_longer_than_the_token_limits_are_reported_by_setting(tiny_config, caplog):
    eos = 0
    rows = [[5, 6, 7, 8], [5, 6, eos], [5, 6, 7, eos]]  # cut at max_length 4; fits; fits, but needs 4 tokens
    config = tiny_config.with_overrides({"soft_prompt.max_length": 4, "generation.max_new_tokens": 3})
    with caplog.at_level("WARNING"):
        warn_about_long_targets(rows, eos, config)
    assert "1 of 3 target rows (33%) are longer than soft_prompt.max_length=4" in caplog.text
    assert "2 of 3 target rows (67%) need more than generation.max_new_tokens=3" in caplog.text


def test_loss_masks_prefix_and_padding(tiny_lm):
    rows = tokenize_targets(tiny_lm.tokenizer, ["short", "a much longer target text with more tokens"], 32)
    input_ids, mask = collate(rows, tiny_lm.tokenizer.pad_token_id)
    prompt = build_soft_prompt("nsp", {"num_tokens": 3, "hidden_size": tiny_lm.hidden_size, "context_dim": 8})
    _, count = target_nll(tiny_lm, prompt, torch.zeros(2, 8), input_ids, mask)
    assert count == sum(len(r) for r in rows)  # every target token incl. EOS, no pad, no prefix
    assert rows[0][-1] == tiny_lm.tokenizer.eos_token_id
    # changing a padded position's token id must not change the loss
    nll_a, _ = target_nll(tiny_lm, prompt, torch.zeros(2, 8), input_ids, mask)
    padded = input_ids.clone()
    padded[0, len(rows[0]):] = 17
    nll_b, _ = target_nll(tiny_lm, prompt, torch.zeros(2, 8), padded, mask)
    assert torch.allclose(nll_a, nll_b)


def test_row_weighting_gives_every_target_row_the_same_weight(tiny_lm):
    rows = tokenize_targets(tiny_lm.tokenizer, ["short", "a much longer target text with many more tokens in it"], 32)
    input_ids, mask = collate(rows, tiny_lm.tokenizer.pad_token_id)
    prompt = build_soft_prompt("nsp", {"num_tokens": 3, "hidden_size": tiny_lm.hidden_size, "context_dim": 8})
    nll, counts = row_nll(tiny_lm, prompt, torch.zeros(2, 8), input_ids, mask)
    assert counts.tolist() == [len(r) for r in rows]
    total, count = target_nll(tiny_lm, prompt, torch.zeros(2, 8), input_ids, mask)
    assert torch.allclose(nll.sum(), total) and count == sum(counts.tolist())
    # each row alone gives its own summed NLL: the per-row split loses nothing to padding
    for i, row in enumerate(rows):
        alone, _ = target_nll(tiny_lm, prompt, torch.zeros(1, 8), *collate([row], tiny_lm.tokenizer.pad_token_id))
        assert torch.allclose(alone, nll[i], atol=1e-4)
    by_row = training_loss(nll, counts, "row")
    by_token = training_loss(nll, counts, "token")
    assert torch.allclose(by_row, (nll / counts).mean()) and torch.allclose(by_token, total / count)
    assert not torch.allclose(by_row, by_token)


@pytest.mark.parametrize("variant", ["nsp", "mpk", "mc"])
def test_training_leaves_the_lm_bit_identical_and_lowers_the_loss(variant, tiny_config, tiny_lm, embedder,
                                                                   gsm8k_targets, tmp_path):
    config = tiny_config.with_overrides({"soft_prompt.variant": variant, "soft_prompt.steps": 12,
                                         "soft_prompt.eval_every": 12})
    before = _lm_fingerprint(tiny_lm)
    result = train_soft_prompt(config, tiny_lm, embedder, gsm8k_targets, tmp_path)
    after = _lm_fingerprint(tiny_lm)
    assert all(torch.equal(before[k], after[k]) for k in before), "frozen LM weights changed"
    assert all(not p.requires_grad for p in tiny_lm.model.parameters())
    # held-out NLL on fixed real texts, before step 1 and after the last step
    assert result.heldout_nll < result.initial_heldout_nll - 0.1, (
        f"{variant}: held-out NLL {result.initial_heldout_nll:.3f} -> {result.heldout_nll:.3f} did not fall")


def test_gradients_reach_only_the_soft_prompt(tiny_lm, gsm8k_targets):
    rows = tokenize_targets(tiny_lm.tokenizer, gsm8k_targets.train[:2], 32)
    input_ids, mask = collate(rows, tiny_lm.tokenizer.pad_token_id)
    prompt = build_soft_prompt("mc", {"num_tokens": 3, "hidden_size": tiny_lm.hidden_size, "context_dim": 8,
                                      "mlp_hidden": 4})
    nll, _ = target_nll(tiny_lm, prompt, torch.randn(2, 8), input_ids, mask)
    nll.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prompt.parameters())
    assert all(p.grad is None for p in tiny_lm.model.parameters())


def test_checkpoint_round_trip_restores_theta_and_config(tiny_config, tiny_lm, embedder, gsm8k_targets, tmp_path):
    result = train_soft_prompt(tiny_config.with_overrides({"soft_prompt.steps": 2}), tiny_lm, embedder,
                               gsm8k_targets, tmp_path)
    prompt, meta = load_checkpoint(result.checkpoint_dir)
    assert theta_hash(prompt) == meta.theta_sha256 == result.checkpoint_hash
    assert meta.config["soft_prompt"]["steps"] == 2
    assert meta.identities["llm"]["name"] == "embedded:tiny-random"
    assert meta.identities["target_snapshot"] == gsm8k_targets.snapshot_hash
    copy = tmp_path / "copy"
    save_checkpoint(copy, prompt, meta)
    again, meta_again = load_checkpoint(copy)
    assert theta_hash(again) == theta_hash(prompt) and meta_again.to_dict() == meta.to_dict()


def test_length_pooled_batches_pad_less_and_still_draw_every_row_evenly():
    lengths = np.random.default_rng(1).integers(20, 192, 400)
    batches = [batch_rows(lengths, 8, step, seed=0) for step in range(800)]
    assert all(len(b) == 8 for b in batches)
    pool = np.concatenate(batches[:LENGTH_POOL])
    assert len(set(pool.tolist())) == 8 * LENGTH_POOL  # a pool draws without replacement
    useful = np.mean([lengths[b].sum() / (8 * lengths[b].max()) for b in batches])
    random_useful = np.mean([lengths[b].sum() / (8 * lengths[b].max())
                             for b in (np.random.default_rng(s).choice(400, 8, replace=False) for s in range(800))])
    assert useful > 0.85 and useful > random_useful + 0.1
    counts = np.bincount(np.concatenate(batches), minlength=400)
    assert counts.min() >= 4 and counts.max() <= 28  # 16 draws per row expected
    assert np.array_equal(batch_rows(lengths, 8, 13, seed=0), batches[13])
    assert len(batch_rows(lengths[:3], 8, 0, seed=0)) == 8  # fewer rows than a batch: drawn with replacement


def test_resume_after_interruption_continues_the_same_run(tiny_config, tiny_lm, embedder, gsm8k_targets,
                                                          tmp_path):
    config = tiny_config.with_overrides({"soft_prompt.steps": 8, "soft_prompt.checkpoint_every": 4})
    straight = train_soft_prompt(config, tiny_lm, embedder, gsm8k_targets, tmp_path / "straight")
    # an interrupted run: killed after its step-4 checkpoint, then resumed
    train_soft_prompt(config.with_overrides({"soft_prompt.steps": 4}), tiny_lm, embedder, gsm8k_targets,
                      tmp_path / "killed")
    resumed = train_soft_prompt(config, tiny_lm, embedder, gsm8k_targets, tmp_path / "killed", resume=True)
    assert resumed.resumed_from_step == 4 and resumed.steps == 8
    assert [s for s, _ in resumed.loss_history] == list(range(1, 9))
    assert [loss for _, loss in resumed.loss_history] == pytest.approx(
        [loss for _, loss in straight.loss_history], rel=1e-5)
    assert resumed.checkpoint_hash == straight.checkpoint_hash


def test_resume_refuses_a_changed_prompt_shape(tiny_config, tiny_lm, embedder, gsm8k_targets, tmp_path):
    train_soft_prompt(tiny_config.with_overrides({"soft_prompt.steps": 1}), tiny_lm, embedder, gsm8k_targets,
                      tmp_path)
    with pytest.raises(ValueError, match="num_tokens"):
        train_soft_prompt(tiny_config.with_overrides({"soft_prompt.num_tokens": 7}), tiny_lm, embedder,
                          gsm8k_targets, tmp_path, resume=True)


def test_warm_start_begins_from_the_earlier_prompt(tiny_config, tiny_lm, embedder, gsm8k_targets, tmp_path):
    first = train_soft_prompt(tiny_config.with_overrides({"soft_prompt.steps": 6}), tiny_lm, embedder,
                              gsm8k_targets, tmp_path / "first")
    warm = tiny_config.with_overrides({"soft_prompt.steps": 2, "soft_prompt.warm_start": str(first.checkpoint_dir)})
    second = train_soft_prompt(warm, tiny_lm, embedder, gsm8k_targets, tmp_path / "second")
    cold = train_soft_prompt(tiny_config.with_overrides({"soft_prompt.steps": 2}), tiny_lm, embedder,
                             gsm8k_targets, tmp_path / "cold")
    assert second.first_loss < cold.first_loss
    _, meta = load_checkpoint(second.checkpoint_dir)
    assert meta.identities["warm_start"] == first.checkpoint_hash


def test_same_seed_same_training(tiny_config, tiny_lm, embedder, gsm8k_targets, tmp_path):
    config = tiny_config.with_overrides({"soft_prompt.steps": 3})
    a = train_soft_prompt(config, tiny_lm, embedder, gsm8k_targets, tmp_path / "a")
    b = train_soft_prompt(config, tiny_lm, embedder, gsm8k_targets, tmp_path / "b")
    assert a.checkpoint_hash == b.checkpoint_hash


def test_bf16_runs_only_where_the_device_has_it_natively(caplog):
    import torch

    from synth_core.models import native_bf16, use_bf16

    cpu = torch.device("cpu")
    assert use_bf16(False, cpu, "generation.bf16") is False
    with caplog.at_level("INFO"):
        assert use_bf16(True, cpu, "generation.bf16") is native_bf16(cpu)
    assert native_bf16(cpu) or "generation.bf16=true, but this cpu has no native bf16" in caplog.text


def test_cpu_threads_follow_the_setting_or_the_worker_slots(monkeypatch):
    from synth_core.models import cpu_threads

    monkeypatch.delenv("SYNTH_TORCH_THREADS", raising=False)
    monkeypatch.delenv("AIRFLOW__CELERY__WORKER_CONCURRENCY", raising=False)
    assert cpu_threads() is None
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    monkeypatch.setenv("AIRFLOW__CELERY__WORKER_CONCURRENCY", "4")
    assert cpu_threads() == 4
    monkeypatch.setenv("SYNTH_TORCH_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.setenv("SYNTH_TORCH_THREADS", "many")
    with pytest.raises(ValueError, match=r"\$SYNTH_TORCH_THREADS='many'"):
        cpu_threads()
