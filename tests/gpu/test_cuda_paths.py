"""The device paths on a GPU: weights in bf16, sampling, a soft-prompt training step, the throughput
bench and a Hugging Face model placed by `device_map`.

They need only PyTorch and transformers (no project fixtures, no hub), so `scripts/gpu_check.sh` runs
them on a bare GPU worker with `--noconftest`. Without CUDA they are skipped, unless
SYNTH_TEST_DEVICE names another device (the unit test of the script runs them on the CPU that way)."""

from __future__ import annotations

import os

import pytest
import torch

from synth_core.bench.device_check import random_llama, word_tokenizer
from synth_core.bench.throughput import generation_like_with_like, prompt_prefill_seconds
from synth_core.config import GenerationConfig, GeneratorConfig
from synth_core.generation.decoding import sample_batch
from synth_core.models import load_frozen_lm, weight_dtype
from synth_core.softprompt import build_soft_prompt
from synth_core.softprompt.training import target_nll

DEVICE = torch.device(os.environ.get("SYNTH_TEST_DEVICE", "cuda"))

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.fixture(scope="module")
def lm():
    return random_llama("tiny", DEVICE, torch.bfloat16)


def test_auto_dtype_is_bf16_where_the_device_runs_it():
    expected = torch.bfloat16 if DEVICE.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    assert weight_dtype("auto", DEVICE) == expected
    assert weight_dtype("float32", DEVICE) == torch.float32


def test_sampling_in_bf16_on_the_device_is_reproducible(lm):
    settings = GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=0.9)
    prefix = torch.randn(4, 8, lm.hidden_size, device=DEVICE)
    first = sample_batch(lm, settings, seed=3, inputs_embeds=prefix)
    again = sample_batch(lm, settings, seed=3, inputs_embeds=prefix)
    assert len(first.texts) == 4 and all(0 < n <= 12 for n in first.new_tokens)
    assert first.texts == again.texts


def test_a_soft_prompt_step_on_the_device_lowers_its_loss(lm):
    prompt = build_soft_prompt("mc", {"num_tokens": 4, "hidden_size": lm.hidden_size, "context_dim": 8,
                                      "mlp_hidden": 16}).to(DEVICE)
    optimizer = torch.optim.AdamW(prompt.parameters(), lr=1e-2)
    input_ids = torch.randint(4, len(lm.tokenizer), (4, 16), generator=torch.Generator().manual_seed(0))
    mask, context = torch.ones_like(input_ids), torch.randn(4, 8)
    losses = []
    for _ in range(5):
        nll, count = target_nll(lm, prompt, context, input_ids, mask, bf16=True)
        (nll / count).backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(nll) / count)
    assert all(p.dtype == torch.float32 and p.device.type == DEVICE.type for p in prompt.parameters())
    assert losses[-1] < losses[0]


def test_the_throughput_bench_measures_on_the_device(lm):
    settings = GenerationConfig(max_new_tokens=4, temperature=1.0, top_p=0.95)
    row = generation_like_with_like(lm, 2, settings, 4, 1, {"fp32": 1.0, "bf16": 1.0}, 1000)
    assert row["fp32"]["plain_tok_s"] > 0 and row["bf16"]["ours_tok_s"] > 0
    assert lm.model.dtype == torch.bfloat16  # put back as it was
    assert prompt_prefill_seconds(lm, [5, 9, 13], repeats=1)["ours_s"] > 0


def test_a_hugging_face_model_is_placed_and_cast_at_load(tmp_path, lm):
    lm.model.save_pretrained(tmp_path)
    word_tokenizer().save_pretrained(tmp_path)
    loaded = load_frozen_lm(GeneratorConfig(model=str(tmp_path), device=str(DEVICE), dtype="bfloat16"))
    assert loaded.device.type == DEVICE.type
    expected = torch.bfloat16 if weight_dtype("bfloat16", DEVICE) == torch.bfloat16 else torch.float32
    assert loaded.model.dtype == expected
    assert not any(p.requires_grad for p in loaded.model.parameters())
    if DEVICE.type == "cuda":
        assert set(loaded.model.hf_device_map.values()) == {DEVICE.index or 0}
