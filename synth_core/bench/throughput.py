"""Throughput benchmark: our generator against plain `transformers` `generate`, in one run.

Every figure is measured in the same process on the same machine, so the ratios hold even when
the machine is shared and noisy: generation tokens/s at several batch sizes (same soft-prefix length,
same decoding, same number of new tokens), the prefill of a batch of left-padded prompts of unequal
length (the few-shot baseline's cost), one training step, training on real GSM8K rows with random
batches against length-pooled ones, model load cold and cached, and the fraction of this machine's
measured matmul peak that generation reaches.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace

import torch

from synth_core.config import GenerationConfig, GeneratorConfig
from synth_core.generation.decoding import prefill, sample_batch
from synth_core.models import FrozenLM, load_frozen_lm


def matmul_peak_gflops(dtype: torch.dtype, size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def _prefix(lm: FrozenLM, batch: int, num_tokens: int) -> torch.Tensor:
    table = lm.model.get_input_embeddings().weight.detach().float()
    rows = torch.randint(0, table.shape[0], (batch * num_tokens,), generator=torch.Generator().manual_seed(0))
    return table[rows].reshape(batch, num_tokens, -1)


@torch.no_grad()
def plain_generate_tokens_per_second(lm: FrozenLM, batch: int, settings: GenerationConfig, num_tokens: int) -> float:
    """The reference: fp32 HF generate with the soft prefix as inputs_embeds, forced to full length."""
    prefix = _prefix(lm, batch, num_tokens)
    torch.manual_seed(0)
    started = time.perf_counter()
    lm.model.generate(inputs_embeds=prefix, attention_mask=torch.ones(prefix.shape[:2], dtype=torch.long),
                      do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0,
                      max_new_tokens=settings.max_new_tokens, min_new_tokens=settings.max_new_tokens,
                      pad_token_id=lm.tokenizer.pad_token_id)
    return batch * settings.max_new_tokens / (time.perf_counter() - started)


def ours_tokens_per_second(lm: FrozenLM, batch: int, settings: GenerationConfig, num_tokens: int) -> float:
    """Our sampler as the product runs it (dtype from settings), counting the tokens it really produced."""
    prefix = _prefix(lm, batch, num_tokens)
    started = time.perf_counter()
    out = sample_batch(lm, settings, seed=0, inputs_embeds=prefix)
    return sum(out.new_tokens) / (time.perf_counter() - started)


@torch.no_grad()
def prompt_prefill_seconds(lm: FrozenLM, lengths: list[int], repeats: int) -> dict[str, float]:
    """Left-padded prompts of `lengths` tokens: one padded forward pass (what `generate` does) against
    ours (each row unpadded, into one padded KV cache); best of `repeats`, interleaved."""
    rows = [torch.randint(0, len(lm.tokenizer), (n,), generator=torch.Generator().manual_seed(n)) for n in lengths]
    width = max(lengths)
    input_ids = torch.stack([torch.nn.functional.pad(r, (width - len(r), 0)) for r in rows])
    mask = torch.stack([torch.nn.functional.pad(torch.ones_like(r), (width - len(r), 0)) for r in rows])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    embeds = lm.model.get_input_embeddings()(input_ids)
    padded, ours = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        padded.append(time.perf_counter() - started)
        started = time.perf_counter()
        prefill(lm.model, embeds, mask, positions)
        ours.append(time.perf_counter() - started)
    return {"rows": len(lengths), "min_length": min(lengths), "max_length": width, "dtype": str(lm.model.dtype),
            "padded_batch_s": min(padded), "ours_s": min(ours), "speedup": min(padded) / min(ours)}


def training_step(lm: FrozenLM, batch: int, length: int, num_tokens: int, bf16: bool) -> dict[str, float]:
    from synth_core.softprompt import build_soft_prompt
    from synth_core.softprompt.training import target_nll

    prompt = build_soft_prompt("mc", {"num_tokens": num_tokens, "hidden_size": lm.hidden_size, "context_dim": 384,
                                      "mlp_hidden": 64})
    optimizer = torch.optim.AdamW(prompt.parameters(), lr=1e-3)
    input_ids = torch.randint(0, len(lm.tokenizer), (batch, length))
    mask = torch.ones_like(input_ids)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        nll, count = target_nll(lm, prompt, torch.randn(batch, 384), input_ids, mask, bf16)
        (nll / count).backward()
        optimizer.step()
        optimizer.zero_grad()
        timings.append(time.perf_counter() - started)
    seconds = min(timings[1:])
    return {"seconds": seconds, "tokens_per_second": batch * length / seconds}


def training_batches(lm: FrozenLM, token_rows: list[list[int]], batch: int, steps: int, bf16: bool) -> dict:
    """Soft-prompt training steps on the same rows: random batches (padded to their longest row) against
    the trainer's length-pooled batches; steps interleaved, so both see the same machine."""
    import numpy as np

    from synth_core.softprompt import build_soft_prompt
    from synth_core.softprompt.training import batch_rows, collate, target_nll

    prompt = build_soft_prompt("nsp", {"num_tokens": 16, "hidden_size": lm.hidden_size, "context_dim": 1})
    lengths = np.array([len(row) for row in token_rows])
    schemes = {"random": lambda step: np.random.default_rng([0, step]).choice(len(lengths), batch, replace=False),
               "length_pooled": lambda step: batch_rows(lengths, batch, step, seed=0)}
    figures = {name: {"seconds": 0.0, "tokens": 0, "padded_tokens": 0} for name in schemes}
    for step in range(steps):
        for name, rows_of in schemes.items():
            input_ids, mask = collate([token_rows[i] for i in rows_of(step)], lm.tokenizer.pad_token_id)
            started = time.perf_counter()
            nll, count = target_nll(lm, prompt, torch.zeros(batch, 1), input_ids, mask, bf16)
            (nll / count).backward()
            prompt.zero_grad()
            figures[name]["seconds"] += time.perf_counter() - started
            figures[name]["tokens"] += count
            figures[name]["padded_tokens"] += mask.numel()
    result = {"batch": batch, "steps": steps, "rows": len(token_rows), "mean_length": float(lengths.mean()),
              "bf16_autocast": bf16}
    for name, f in figures.items():
        result[name] = {"s_per_step": f["seconds"] / steps, "target_tokens_per_second": f["tokens"] / f["seconds"],
                        "useful_token_fraction": f["tokens"] / f["padded_tokens"]}
    result["speedup"] = result["length_pooled"]["target_tokens_per_second"] / result["random"][
        "target_tokens_per_second"]
    return result


def run_throughput(batches: tuple[int, ...] = (1, 16, 64), new_tokens: int = 64, num_tokens: int = 16,
                   model: str = "embedded:smollm2-135m", repeats: int = 3, prompt_rows: int = 16,
                   prompt_lengths: tuple[int, int] = (256, 768), training_texts: list[str] | None = None,
                   training_steps: int = 16) -> dict:
    torch.manual_seed(0)
    results: dict = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                 "cuda": torch.cuda.is_available()}}
    if model == "embedded:smollm2-135m":
        with tempfile.TemporaryDirectory() as cold_cache:
            previous = os.environ.get("SYNTH_CACHE_DIR")
            os.environ["SYNTH_CACHE_DIR"] = cold_cache
            cold = load_frozen_lm(GeneratorConfig(model=model))
            warm = load_frozen_lm(GeneratorConfig(model=model))
            if previous is None:
                os.environ.pop("SYNTH_CACHE_DIR")
            else:
                os.environ["SYNTH_CACHE_DIR"] = previous
        results["load_seconds"] = {"cold_gguf": cold.load_seconds, "cached_safetensors": warm.load_seconds}
    lm = load_frozen_lm(GeneratorConfig(model=model))
    params = sum(p.numel() for p in lm.model.parameters())
    peak = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
    results["matmul_peak_gflops"] = peak
    base = GenerationConfig(max_new_tokens=new_tokens, temperature=1.0, top_p=0.95)
    ours_settings = replace(base, bf16=True)
    results["generation"] = []
    for batch in batches:
        runs = []
        for _ in range(repeats):  # interleaved, best of `repeats`: the machine is shared and noisy
            lm.model.float()
            plain = plain_generate_tokens_per_second(lm, batch, base, num_tokens)
            ours_fp32 = ours_tokens_per_second(lm, batch, base, num_tokens)
            lm.model.to(torch.bfloat16)
            runs.append((plain, ours_fp32, ours_tokens_per_second(lm, batch, ours_settings, num_tokens)))
        plain, ours_fp32, ours_bf16 = (max(column) for column in zip(*runs, strict=True))
        results["generation"].append({
            "batch": batch, "plain_generate_tok_s": plain, "ours_fp32_tok_s": ours_fp32, "ours_bf16_tok_s": ours_bf16,
            "speedup_bf16_vs_plain": ours_bf16 / plain,
            "fraction_of_fp32_peak_plain": plain * 2 * params / 1e9 / peak["fp32"],
            "fraction_of_bf16_peak_ours": ours_bf16 * 2 * params / 1e9 / peak["bf16"]})
    low, high = prompt_lengths  # GSM8K's 3-shot prompts run 370-800 tokens
    results["prompt_prefill"] = prompt_prefill_seconds(
        lm, [low + (high - low) * i // max(prompt_rows - 1, 1) for i in range(prompt_rows)], repeats)
    lm.model.float()
    results["training_step"] = {"batch": 8, "length": 64,
                                "fp32": training_step(lm, 8, 64, num_tokens, bf16=False),
                                "bf16_autocast": training_step(lm, 8, 64, num_tokens, bf16=True)}
    if training_texts:
        from synth_core.bench.quality import SCALES
        from synth_core.softprompt.training import tokenize_targets

        small = SCALES["small"]  # the quality bench's training sizes
        rows = tokenize_targets(lm.tokenizer, training_texts, small.max_length)
        results["training_batches"] = training_batches(lm, rows, small.batch_size, training_steps, bf16=True)
    results["params"] = params
    results["settings"] = {"new_tokens": new_tokens, "prefix_tokens": num_tokens, "repeats": repeats,
                           "temperature": base.temperature, "top_p": base.top_p, "model": model}
    return results
